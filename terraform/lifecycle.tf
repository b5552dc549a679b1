# Storage classes and expiry. See README.md, "Lifecycle and object size", for the numbers
# behind the size thresholds: a turn object is a few KiB, and every class below STANDARD
# costs more than STANDARD for such an object, so only large objects (compacted segments)
# move.

locals {
  # Transitions grouped by the size threshold that guards them; a rule has one filter, so
  # each group is its own rule. Disabled transitions (null days) are dropped.
  infrequent_access_transitions = {
    for storage_class, days in {
      STANDARD_IA = var.transition_to_standard_ia_days
      GLACIER_IR  = var.transition_to_glacier_ir_days
    } : storage_class => days if days != null
  }
  archive_transitions = {
    for storage_class, days in {
      GLACIER      = var.transition_to_glacier_days
      DEEP_ARCHIVE = var.transition_to_deep_archive_days
    } : storage_class => days if days != null
  }

  # Rules with a size filter. S3 resolves overlaps (an object larger than both thresholds
  # matches both rules) by moving it to the colder class once that class's day comes.
  sized_transition_rules = {
    for id, rule in {
      "store-infrequent-access" = {
        min_size    = var.infrequent_access_min_object_size_bytes
        transitions = local.infrequent_access_transitions
      }
      "store-archive" = {
        min_size    = var.archive_min_object_size_bytes
        transitions = local.archive_transitions
      }
    } : id => rule if length(rule.transitions) > 0
  }

  # The rule over the whole store prefix needs at least one action.
  store_expiry_rule_enabled = var.expiration_days != null || var.versioning_enabled
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  # Explicit: S3's default since 2024 keeps objects under 128 KiB out of every transition;
  # the size filters below are stricter than that for the archive classes.
  transition_default_minimum_object_size = "all_storage_classes_128K"

  dynamic "rule" {
    for_each = local.store_expiry_rule_enabled ? ["store-expiration"] : []

    content {
      id     = rule.value
      status = "Enabled"

      filter {
        prefix = local.prefix
      }

      expiration {
        # Either expire current objects after N days, or (with versioning) only clean up
        # delete markers that no longer hide any version. S3 allows one or the other.
        days                         = var.expiration_days
        expired_object_delete_marker = var.expiration_days == null ? true : null
      }

      dynamic "noncurrent_version_expiration" {
        for_each = var.versioning_enabled && var.noncurrent_version_expiration_days != null ? [var.noncurrent_version_expiration_days] : []

        content {
          noncurrent_days = noncurrent_version_expiration.value
        }
      }
    }
  }

  dynamic "rule" {
    for_each = local.sized_transition_rules

    content {
      id     = rule.key
      status = "Enabled"

      filter {
        # `and` needs two predicates; with an empty store prefix the size alone filters.
        object_size_greater_than = local.prefix == "" ? rule.value.min_size : null

        dynamic "and" {
          for_each = local.prefix == "" ? [] : [local.prefix]

          content {
            prefix                   = and.value
            object_size_greater_than = rule.value.min_size
          }
        }
      }

      dynamic "transition" {
        for_each = rule.value.transitions

        content {
          storage_class = transition.key
          days          = transition.value
        }
      }
    }
  }

  dynamic "rule" {
    for_each = var.analytics_enabled ? [var.athena_results_prefix] : []

    content {
      id     = "athena-results-expiration"
      status = "Enabled"

      filter {
        prefix = rule.value
      }

      expiration {
        days = var.athena_results_expiration_days
      }

      dynamic "noncurrent_version_expiration" {
        for_each = var.versioning_enabled ? [1] : []

        content {
          noncurrent_days = 1
        }
      }
    }
  }

  # Bucket-wide: unfinished multipart uploads are billed until aborted.
  #
  # Written as the last `dynamic` block on purpose: checkov 3.x renders only the last
  # dynamic `rule` block of a resource and drops static ones, and its CKV_AWS_300 (abort
  # incomplete uploads) must see this rule. The terraform tests assert that S3 gets it.
  dynamic "rule" {
    for_each = ["abort-incomplete-multipart-uploads"]

    content {
      id     = rule.value
      status = "Enabled"

      filter {}

      abort_incomplete_multipart_upload {
        days_after_initiation = var.abort_incomplete_multipart_upload_days
      }
    }
  }

  # Lifecycle rules on a versioned bucket act on versions; set versioning first.
  depends_on = [aws_s3_bucket_versioning.this]
}
