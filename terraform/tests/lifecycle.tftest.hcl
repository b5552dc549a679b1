# Lifecycle rules: small turn objects stay in STANDARD, large objects (segments) move.
# Also the empty prefix (the whole bucket) and versioning turned off.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target          = aws_kms_key.this
  override_during = plan
  values = {
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
}

run "default_rules" {
  command = plan

  assert {
    condition = toset([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id]) == toset([
      "abort-incomplete-multipart-uploads",
      "athena-results-expiration",
      "store-archive",
      "store-expiration",
      "store-infrequent-access",
    ])
    error_message = "The default lifecycle has the abort, store expiry, two transition and Athena results rules."
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.status == "Enabled"])
    error_message = "Every rule must be enabled."
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this.transition_default_minimum_object_size == "all_storage_classes_128K"
    error_message = "The 128 KiB default transition minimum must be explicit."
  }

  # Computed attributes left unset (the filter's prefix, say) are unknown during plan, so
  # the emptiness of this filter is asserted through its nested blocks; the HCL itself is
  # checked by tests/terraform/test_terraform_hcl.py.
  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
        days       = r.abort_incomplete_multipart_upload[0].days_after_initiation
        and_blocks = length(r.filter[0].and)
        tag_blocks = length(r.filter[0].tag)
      } if r.id == "abort-incomplete-multipart-uploads"
    ] == [{ days = 7, and_blocks = 0, tag_blocks = 0 }]
    error_message = "Incomplete multipart uploads must be aborted after 7 days, bucket-wide (empty filter)."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
        prefix      = r.filter[0].and[0].prefix
        min_size    = r.filter[0].and[0].object_size_greater_than
        transitions = { for t in r.transition : t.storage_class => t.days }
      } if r.id == "store-infrequent-access"
      ] == [{
        prefix      = "agent-events/"
        min_size    = 131072
        transitions = { STANDARD_IA = 30, GLACIER_IR = 90 }
    }]
    error_message = "Objects above 128 KiB under the prefix move to STANDARD_IA at 30 days and GLACIER_IR at 90."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
        prefix      = r.filter[0].and[0].prefix
        min_size    = r.filter[0].and[0].object_size_greater_than
        transitions = { for t in r.transition : t.storage_class => t.days }
      } if r.id == "store-archive"
      ] == [{
        prefix      = "agent-events/"
        min_size    = 1048576
        transitions = { DEEP_ARCHIVE = 180 }
    }]
    error_message = "Objects above 1 MiB under the prefix move to DEEP_ARCHIVE at 180 days; GLACIER is off by default."
  }

  assert {
    condition = alltrue(flatten([
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : [
        for t in r.transition : try(r.filter[0].and[0].object_size_greater_than >= 131072, false)
      ]
    ]))
    error_message = "Every transition must be guarded by a size filter of at least 128 KiB."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
        prefix        = r.filter[0].prefix
        delete_marker = r.expiration[0].expired_object_delete_marker
        noncurrent    = r.noncurrent_version_expiration[0].noncurrent_days
      } if r.id == "store-expiration"
      ] == [{
        prefix        = "agent-events/"
        delete_marker = true
        noncurrent    = 90
    }]
    error_message = "By default turns never expire; expired delete markers are removed and noncurrent versions expire after 90 days."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : {
        prefix     = r.filter[0].prefix
        days       = r.expiration[0].days
        noncurrent = r.noncurrent_version_expiration[0].noncurrent_days
      } if r.id == "athena-results-expiration"
    ] == [{ prefix = "athena-results/", days = 30, noncurrent = 1 }]
    error_message = "Athena results expire after 30 days under their own prefix."
  }
}

run "custom_thresholds_expiry_and_all_transitions" {
  command = plan

  variables {
    transition_to_standard_ia_days          = 45
    transition_to_glacier_ir_days           = 120
    transition_to_glacier_days              = 200
    transition_to_deep_archive_days         = 400
    expiration_days                         = 2555
    noncurrent_version_expiration_days      = 7
    abort_incomplete_multipart_upload_days  = 2
    infrequent_access_min_object_size_bytes = 262144
    archive_min_object_size_bytes           = 8388608
  }

  assert {
    condition = {
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id => {
        min_size    = r.filter[0].and[0].object_size_greater_than
        transitions = { for t in r.transition : t.storage_class => t.days }
      } if length(r.transition) > 0
      } == {
      "store-infrequent-access" = { min_size = 262144, transitions = { STANDARD_IA = 45, GLACIER_IR = 120 } }
      "store-archive"           = { min_size = 8388608, transitions = { GLACIER = 200, DEEP_ARCHIVE = 400 } }
    }
    error_message = "Thresholds and days must follow the inputs."
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : [r.expiration[0].days, r.noncurrent_version_expiration[0].noncurrent_days]
      if r.id == "store-expiration"
    ] == [[2555, 7]]
    error_message = "expiration_days must expire current objects and noncurrent_version_expiration_days the old versions."
  }

  assert {
    condition     = [for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.abort_incomplete_multipart_upload[0].days_after_initiation if r.id == "abort-incomplete-multipart-uploads"] == [2]
    error_message = "abort_incomplete_multipart_upload_days must be applied."
  }
}

run "transitions_disabled" {
  command = plan

  variables {
    transition_to_standard_ia_days  = null
    transition_to_glacier_ir_days   = null
    transition_to_deep_archive_days = null
    analytics_enabled               = false
  }

  assert {
    condition     = toset([for r in aws_s3_bucket_lifecycle_configuration.this.rule : r.id]) == toset(["abort-incomplete-multipart-uploads", "store-expiration"])
    error_message = "With every transition null and analytics off only the abort and store expiry rules remain."
  }
}

run "empty_prefix_filters_by_size_alone" {
  command = plan

  variables {
    prefix = ""
  }

  assert {
    condition = [
      for r in aws_s3_bucket_lifecycle_configuration.this.rule : [r.filter[0].object_size_greater_than, length(r.filter[0].and)]
      if r.id == "store-infrequent-access"
    ] == [[131072, 0]]
    error_message = "With an empty prefix the size filter stands alone (an `and` needs two predicates)."
  }

  assert {
    condition     = output.s3_url == "s3://acme-agent-events/"
    error_message = "s3_url of an empty prefix is the bucket root."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_policy.store["reader"].policy).Statement : s.Sid => [s.Resource, try(s.Condition, null)]
      if s.Sid != "StoreKeyThroughS3"
      } == {
      ListUnderPrefix    = ["arn:aws:s3:::acme-agent-events", { StringLikeIfExists = { "s3:prefix" = ["*"] } }]
      ObjectsUnderPrefix = ["arn:aws:s3:::acme-agent-events/*", null]
    }
    error_message = "With an empty prefix the policies cover the bucket, and listing without a prefix is allowed."
  }
}

run "versioning_off" {
  command = plan

  variables {
    versioning_enabled = false
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Suspended"
    error_message = "versioning_enabled = false suspends versioning (S3 has no way back to unversioned)."
  }

  assert {
    condition     = alltrue([for r in aws_s3_bucket_lifecycle_configuration.this.rule : length(r.noncurrent_version_expiration) == 0])
    error_message = "No noncurrent-version rules without versioning."
  }
}
