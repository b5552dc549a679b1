output "bucket_name" {
  description = "Name of the event store bucket."
  value       = local.bucket_name
}

output "bucket_arn" {
  description = "ARN of the event store bucket."
  value       = aws_s3_bucket.this.arn
}

output "prefix" {
  description = "Key prefix of the event store: empty or ending with \"/\"."
  value       = local.prefix
}

output "region" {
  description = "AWS region of the bucket."
  value       = local.region
}

output "s3_url" {
  description = "s3://bucket/prefix of the event store, the argument of S3EventStore.from_url()."
  value       = "s3://${local.bucket_name}/${local.prefix}"
}

output "kms_key_arn" {
  description = "ARN of the KMS key that encrypts the bucket (created by the module or passed in)."
  value       = local.kms_key_arn
}

output "kms_key_created" {
  description = "Whether the module created the KMS key."
  value       = var.create_kms_key
}

output "reader_policy_arn" {
  description = "ARN of the IAM policy for readers (analytics, replay) of the whole store prefix."
  value       = aws_iam_policy.store["reader"].arn
}

output "writer_policy_arn" {
  description = "ARN of the IAM policy for writers (agent workers) of the whole store prefix."
  value       = aws_iam_policy.store["writer"].arn
}

output "admin_policy_arn" {
  description = "ARN of the IAM policy for administrators (may delete turns and versions)."
  value       = aws_iam_policy.store["admin"].arn
}

output "reader_policy_json" {
  description = "JSON document of the reader policy."
  value       = local.policy_documents["reader"]
}

output "writer_policy_json" {
  description = "JSON document of the writer policy."
  value       = local.policy_documents["writer"]
}

output "admin_policy_json" {
  description = "JSON document of the admin policy."
  value       = local.policy_documents["admin"]
}

output "s3_actions" {
  description = "The S3 actions granted to each role, as declared in iam.tf."
  value = {
    reader = local.reader_s3_actions
    writer = local.writer_s3_actions
    admin  = local.admin_s3_actions
  }
}

output "tenants" {
  description = "Per tenant: the prefix and s3_url to configure the library with, and the writer and reader policies scoped to it."
  value = {
    for tenant in var.tenants : tenant => {
      prefix             = "${local.prefix}tenants/${tenant}/"
      s3_url             = "s3://${local.bucket_name}/${local.prefix}tenants/${tenant}/"
      writer_policy_arn  = aws_iam_policy.store["tenant-${tenant}-writer"].arn
      reader_policy_arn  = aws_iam_policy.store["tenant-${tenant}-reader"].arn
      writer_policy_json = local.policy_documents["tenant-${tenant}-writer"]
      reader_policy_json = local.policy_documents["tenant-${tenant}-reader"]
    }
  }
}

output "glue_database_name" {
  description = "Glue catalog database holding the turn events table (null with analytics_enabled = false)."
  value       = one(aws_glue_catalog_database.this[*].name)
}

output "glue_table_name" {
  description = "Glue catalog table over the turn objects (null with analytics_enabled = false)."
  value       = one(aws_glue_catalog_table.turn_events[*].name)
}

output "glue_thread_table_name" {
  description = "Glue catalog table partitioned by shard and thread, for single-thread lookups (null when analytics_enabled or thread_table_enabled is false)."
  value       = one(aws_glue_catalog_table.turn_events_by_thread[*].name)
}

output "athena_workgroup_name" {
  description = "Athena workgroup for queries over the store (null with analytics_enabled = false)."
  value       = one(aws_athena_workgroup.this[*].name)
}

output "athena_results_s3_url" {
  description = "Where the Athena workgroup writes query results (null with analytics_enabled = false)."
  value       = var.analytics_enabled ? "s3://${local.bucket_name}/${var.athena_results_prefix}" : null
}

output "athena_query_policy_arn" {
  description = "ARN of the IAM policy for running queries in the workgroup; attach it together with the reader policy (null with analytics_enabled = false)."
  value       = one(aws_iam_policy.athena_query[*].arn)
}

output "athena_query_policy_json" {
  description = "JSON document of the Athena query policy (null with analytics_enabled = false)."
  value       = var.analytics_enabled ? local.athena_query_policy : null
}
