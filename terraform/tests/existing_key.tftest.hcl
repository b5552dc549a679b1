# A caller-supplied KMS key, a generated bucket name, access logging and analytics off.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name = "agent-events"
}

run "existing_kms_key_is_used_everywhere" {
  command = plan

  variables {
    bucket_name    = "acme-agent-events"
    create_kms_key = false
    kms_key_arn    = "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"
  }

  assert {
    condition     = length(aws_kms_key.this) == 0 && length(aws_kms_alias.this) == 0
    error_message = "No key may be created when one is passed."
  }

  assert {
    condition     = [for r in aws_s3_bucket_server_side_encryption_configuration.this.rule : r.apply_server_side_encryption_by_default[0].kms_master_key_id] == ["arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"]
    error_message = "Default encryption must use the passed key."
  }

  assert {
    condition = alltrue([
      for key, policy in aws_iam_policy.store : alltrue([
        for s in jsondecode(policy.policy).Statement :
        s.Resource == "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555" if s.Sid == "StoreKeyThroughS3"
      ])
    ])
    error_message = "The policies must grant the passed key."
  }

  assert {
    condition     = aws_athena_workgroup.this[0].configuration[0].result_configuration[0].encryption_configuration[0].kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"
    error_message = "Athena results must be encrypted with the passed key."
  }

  assert {
    condition     = output.kms_key_arn == "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555" && !output.kms_key_created
    error_message = "kms_key_arn output must be the passed key."
  }
}

run "generated_bucket_name" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.bucket_prefix == "agent-events-"
    error_message = "Without bucket_name the bucket name is generated from \"<name>-\"."
  }
}

run "generated_bucket_name_with_prefix" {
  command = plan

  variables {
    bucket_name_prefix = "acme-events-"
  }

  assert {
    condition     = aws_s3_bucket.this.bucket_prefix == "acme-events-"
    error_message = "bucket_name_prefix must be used."
  }
}

run "access_logging" {
  command = plan

  variables {
    bucket_name       = "acme-agent-events"
    access_log_bucket = "acme-s3-access-logs"
  }

  assert {
    condition     = aws_s3_bucket_logging.this[0].target_bucket == "acme-s3-access-logs" && aws_s3_bucket_logging.this[0].target_prefix == "s3-access-logs/acme-agent-events/"
    error_message = "Access logs go to the target bucket under s3-access-logs/<bucket>/."
  }
}

run "analytics_disabled" {
  command = plan

  variables {
    bucket_name       = "acme-agent-events"
    analytics_enabled = false
  }

  assert {
    condition     = length(aws_glue_catalog_database.this) == 0 && length(aws_glue_catalog_table.turn_events) == 0 && length(aws_glue_catalog_table.turn_events_by_thread) == 0 && length(aws_glue_catalog_table.published_events) == 0 && length(aws_athena_workgroup.this) == 0 && length(aws_iam_policy.athena_query) == 0
    error_message = "analytics_enabled = false creates no Glue or Athena resources."
  }

  assert {
    condition     = output.glue_table_name == null && output.glue_thread_table_name == null && output.glue_published_table_name == null && output.athena_workgroup_name == null && output.athena_query_policy_json == null
    error_message = "The analytics outputs are null when analytics are off."
  }
}
