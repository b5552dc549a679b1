# Shared facts and names. One file per concern beside this one:
#   kms.tf        the encryption key (created unless kms_key_arn is passed)
#   bucket.tf     the bucket, its controls and its policy
#   lifecycle.tf  transitions and expiry under the store's prefix
#   iam.tf        reader / writer / admin (and per-tenant) policies
#   analytics.tf  Glue database and table, Athena workgroup and query policy

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # The variable's validations guarantee "" or a value ending in "/", the same
  # normalisation the library applies to its own prefix.
  prefix = var.prefix

  # `bucket` is known at plan time whenever bucket_name is set, which keeps the policies
  # below plannable; building the ARN here avoids waiting for the computed `arn`.
  bucket_name = aws_s3_bucket.this.bucket
  bucket_arn  = "arn:${local.partition}:s3:::${local.bucket_name}"

  kms_key_arn = var.create_kms_key ? aws_kms_key.this[0].arn : var.kms_key_arn

  # S3 encrypts through KMS on the caller's behalf; the key is never used directly.
  s3_kms_via_service = "s3.${local.region}.amazonaws.com"

  # Key layout written by the library (s3_eventstore key layout; fixed):
  #   {prefix}threads/shard={hh}/thread={enc}/{turn:020d}.jsonl.zst
  #   {prefix}threads/shard={hh}/thread={enc}/seg-{first:020d}-{last:020d}.jsonl.zst  (segments, later)
  threads_prefix = "${local.prefix}threads/"

  glue_database_name    = coalesce(var.glue_database_name, replace(var.name, "-", "_"))
  athena_workgroup_name = coalesce(var.athena_workgroup_name, var.name)
}
