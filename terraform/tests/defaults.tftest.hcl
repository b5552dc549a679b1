# The module with its defaults, planned against a mocked AWS provider (no credentials, no
# network). Data sources get fixed, realistic values; the KMS key ARN, computed by AWS, is
# overridden during plan so the policies that embed it can be asserted on.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target          = aws_kms_key.this
  override_during = plan
  values = {
    arn    = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    key_id = "11111111-2222-3333-4444-555555555555"
  }
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
}

run "bucket_is_private_versioned_and_kms_encrypted" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.bucket == "acme-agent-events"
    error_message = "The bucket must be named by bucket_name."
  }

  assert {
    condition     = aws_s3_bucket.this.object_lock_enabled == false && length(aws_s3_bucket_object_lock_configuration.this) == 0
    error_message = "Object Lock must be off by default."
  }

  assert {
    condition     = aws_s3_bucket.this.force_destroy == false
    error_message = "force_destroy must be off by default."
  }

  assert {
    condition     = aws_s3_bucket_ownership_controls.this.rule[0].object_ownership == "BucketOwnerEnforced"
    error_message = "ACLs must be disabled (BucketOwnerEnforced)."
  }

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.this.block_public_acls,
      aws_s3_bucket_public_access_block.this.block_public_policy,
      aws_s3_bucket_public_access_block.this.ignore_public_acls,
      aws_s3_bucket_public_access_block.this.restrict_public_buckets,
    ])
    error_message = "All four public access blocks must be on."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be on by default."
  }

  assert {
    condition = [for r in aws_s3_bucket_server_side_encryption_configuration.this.rule : {
      algorithm  = r.apply_server_side_encryption_by_default[0].sse_algorithm
      key        = r.apply_server_side_encryption_by_default[0].kms_master_key_id
      bucket_key = r.bucket_key_enabled
      }] == [{
      algorithm  = "aws:kms"
      key        = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      bucket_key = true
    }]
    error_message = "Default encryption must be SSE-KMS with the module's key and S3 bucket keys on."
  }

  assert {
    condition     = length(aws_kms_key.this) == 1 && aws_kms_key.this[0].enable_key_rotation && aws_kms_key.this[0].deletion_window_in_days == 30
    error_message = "The module must create a KMS key with rotation on."
  }

  assert {
    condition     = aws_kms_alias.this[0].name == "alias/agent-events-s3-eventstore"
    error_message = "The created key must get an alias named after the store."
  }

  assert {
    condition     = length(aws_s3_bucket_logging.this) == 0
    error_message = "Access logging is off unless access_log_bucket is set."
  }

  assert {
    condition     = output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555" && output.kms_key_created
    error_message = "kms_key_arn output must be the created key."
  }
}

run "kms_key_policy_limits_data_use_to_s3" {
  command = plan

  assert {
    condition     = [for s in jsondecode(aws_kms_key.this[0].policy).Statement : s.Sid] == ["KeyAdministration", "UseThroughS3ByAccountIamPolicies"]
    error_message = "The key policy must have exactly the administration and use-through-S3 statements."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.this[0].policy).Statement :
      s.Principal.AWS == ["arn:aws:iam::123456789012:root"] || s.Principal.AWS == "arn:aws:iam::123456789012:root"
    ])
    error_message = "Without kms_key_administrator_arns the key policy names the account root only (no wildcard principal)."
  }

  assert {
    condition = alltrue([
      for s in jsondecode(aws_kms_key.this[0].policy).Statement :
      !contains(s.Action, "kms:*") && !contains(s.Action, "kms:Decrypt") if s.Sid == "KeyAdministration"
    ])
    error_message = "Key administrators must not get kms:* or data-plane actions."
  }

  assert {
    condition = [
      for s in jsondecode(aws_kms_key.this[0].policy).Statement : s.Condition.StringEquals
      if s.Sid == "UseThroughS3ByAccountIamPolicies"
      ] == [{
        "kms:CallerAccount" = "123456789012"
        "kms:ViaService"    = "s3.us-east-1.amazonaws.com"
    }]
    error_message = "Data-plane use of the key must be limited to S3 in the bucket's region and this account."
  }
}

run "bucket_policy_denies_insecure_transport_and_wrong_encryption" {
  command = plan

  assert {
    condition     = aws_s3_bucket_policy.this.policy == local.bucket_policy
    error_message = "The bucket policy resource must carry the module's policy document."
  }

  assert {
    condition     = alltrue([for s in jsondecode(local.bucket_policy).Statement : s.Effect == "Deny" && s.Principal == "*"])
    error_message = "The bucket policy only denies, and denies everyone."
  }

  assert {
    condition = [
      for s in jsondecode(local.bucket_policy).Statement : {
        action    = s.Action
        resource  = s.Resource
        condition = s.Condition
      } if s.Sid == "DenyInsecureTransport"
      ] == [{
        action    = "s3:*"
        resource  = ["arn:aws:s3:::acme-agent-events", "arn:aws:s3:::acme-agent-events/*"]
        condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
    error_message = "Requests without TLS must be denied on the bucket and its objects."
  }

  assert {
    condition = [
      for s in jsondecode(local.bucket_policy).Statement : s.Condition if s.Sid == "DenyOutdatedTls"
    ] == [{ NumericLessThan = { "s3:TlsVersion" = 1.2 } }]
    error_message = "TLS below 1.2 must be denied."
  }

  assert {
    condition = [
      for s in jsondecode(local.bucket_policy).Statement : s.Condition if s.Sid == "DenyEncryptionOtherThanKms"
      ] == [{
        Null            = { "s3:x-amz-server-side-encryption" = "false" }
        StringNotEquals = { "s3:x-amz-server-side-encryption" = "aws:kms" }
    }]
    error_message = "An explicit encryption header other than aws:kms must be denied (and only an explicit one)."
  }

  assert {
    condition = [
      for s in jsondecode(local.bucket_policy).Statement : s.Condition if s.Sid == "DenyOtherKmsKeys"
      ] == [{
        Null            = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = "false" }
        StringNotEquals = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555" }
    }]
    error_message = "An explicit KMS key other than the bucket's key must be denied."
  }

  assert {
    condition = [
      for s in jsondecode(local.bucket_policy).Statement : s.Condition if s.Sid == "DenyCustomerProvidedKeys"
    ] == [{ Null = { "s3:x-amz-server-side-encryption-customer-algorithm" = "false" } }]
    error_message = "SSE-C uploads must be denied."
  }

  # The library sends no SSE headers and relies on default encryption: no statement may
  # deny a request because a header is missing (a Null condition of "true").
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(local.bucket_policy).Statement : [
        for key, value in try(s.Condition.Null, {}) : value == "false"
      ]
    ]))
    error_message = "The bucket policy must not deny uploads that carry no encryption header."
  }
}

run "iam_policies_are_scoped_to_the_store_prefix" {
  command = plan

  assert {
    condition     = keys(aws_iam_policy.store) == ["admin", "reader", "writer"]
    error_message = "Without tenants the module creates exactly the reader, writer and admin policies."
  }

  assert {
    condition = jsondecode(aws_iam_policy.store["reader"].policy).Statement == [
      {
        Sid       = "ListUnderPrefix"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = "arn:aws:s3:::acme-agent-events"
        Condition = { StringLike = { "s3:prefix" = ["agent-events/*"] } }
      },
      {
        Sid      = "ObjectsUnderPrefix"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = "arn:aws:s3:::acme-agent-events/agent-events/*"
      },
      {
        Sid      = "StoreKeyThroughS3"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.us-east-1.amazonaws.com" }
          StringLike = {
            "kms:EncryptionContext:aws:s3:arn" = [
              "arn:aws:s3:::acme-agent-events",
              "arn:aws:s3:::acme-agent-events/agent-events/*",
            ]
          }
        }
      },
    ]
    error_message = "The reader policy must be exactly: list under the prefix, get objects under it, decrypt through S3."
  }

  assert {
    condition = [for s in jsondecode(aws_iam_policy.store["writer"].policy).Statement : s.Action] == [
      ["s3:ListBucket"],
      ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
      ["kms:Decrypt", "kms:GenerateDataKey"],
    ]
    error_message = "The writer may list, get, put and abort uploads, and decrypt and generate data keys."
  }

  assert {
    condition = [for s in jsondecode(aws_iam_policy.store["admin"].policy).Statement : s.Action] == [
      ["s3:ListBucket", "s3:ListBucketVersions"],
      ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion"],
      ["kms:Decrypt", "kms:GenerateDataKey"],
    ]
    error_message = "The admin adds deleting objects and versions and listing versions."
  }

  assert {
    condition = alltrue([
      for key, policy in aws_iam_policy.store : alltrue([
        for s in jsondecode(policy.policy).Statement :
        s.Resource == "arn:aws:s3:::acme-agent-events/agent-events/*" if s.Sid == "ObjectsUnderPrefix"
      ])
    ])
    error_message = "Every store policy must grant object actions under the store prefix only."
  }

  assert {
    condition = alltrue(flatten([
      for key, policy in aws_iam_policy.store : [
        for s in jsondecode(policy.policy).Statement : s.Resource != "*" && !contains(flatten([s.Action]), "s3:*") && !contains(flatten([s.Action]), "kms:*")
      ]
    ]))
    error_message = "No store policy may use a wildcard resource or action."
  }

  assert {
    condition     = output.reader_policy_json == aws_iam_policy.store["reader"].policy && output.writer_policy_json == aws_iam_policy.store["writer"].policy && output.admin_policy_json == aws_iam_policy.store["admin"].policy
    error_message = "The policy JSON outputs must be the documents of the created policies."
  }

  assert {
    condition     = aws_iam_policy.store["writer"].name == "agent-events-eventstore-writer" && aws_iam_policy.store["writer"].path == "/"
    error_message = "Policies are named <name>-eventstore-<role>."
  }
}

run "outputs_describe_the_store" {
  command = plan

  assert {
    condition     = output.s3_url == "s3://acme-agent-events/agent-events/"
    error_message = "s3_url must be s3://bucket/prefix."
  }

  assert {
    condition     = output.prefix == "agent-events/" && output.region == "us-east-1" && output.bucket_name == "acme-agent-events"
    error_message = "prefix, region and bucket_name outputs are wrong."
  }

  assert {
    condition     = output.glue_database_name == "agent_events" && output.glue_table_name == "turn_events" && output.athena_workgroup_name == "agent-events"
    error_message = "Glue and Athena names must derive from the module name."
  }

  assert {
    condition     = output.tenants == {}
    error_message = "No tenants by default."
  }

  assert {
    condition     = output.s3_actions.reader == ["s3:GetObject", "s3:ListBucket"]
    error_message = "The s3_actions output must show the declared lists."
  }
}
