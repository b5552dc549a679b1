# The customer managed key that encrypts the bucket by default (SSE-KMS) and the Athena
# query results. Skipped with create_kms_key = false (the caller passes kms_key_arn).
#
# `count` tests a bool rather than `var.kms_key_arn == null`: checkov cannot evaluate
# comparisons with null and would drop the key from its scan (CKV_AWS_7 and friends).

locals {
  account_root_arn = "arn:${local.partition}:iam::${local.account_id}:root"

  kms_key_administrators = length(var.kms_key_administrator_arns) > 0 ? var.kms_key_administrator_arns : [local.account_root_arn]
}

resource "aws_kms_key" "this" {
  count = var.create_kms_key ? 1 : 0

  description             = "s3-eventstore ${var.name}: default encryption of the event store bucket and its Athena results"
  key_usage               = "ENCRYPT_DECRYPT"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_in_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # Administration only: no data-plane actions here, so administering the key does
        # not by itself allow reading the event store.
        Sid       = "KeyAdministration"
        Effect    = "Allow"
        Principal = { AWS = local.kms_key_administrators }
        Action = [
          "kms:CancelKeyDeletion",
          "kms:Create*",
          "kms:Delete*",
          "kms:Describe*",
          "kms:Disable*",
          "kms:Enable*",
          "kms:Get*",
          "kms:List*",
          "kms:Put*",
          "kms:Revoke*",
          "kms:RotateKeyOnDemand",
          "kms:ScheduleKeyDeletion",
          "kms:TagResource",
          "kms:UntagResource",
          "kms:Update*",
        ]
        Resource = "*"
      },
      {
        # Delegates data-plane use to this account's IAM policies (the reader, writer,
        # admin and Athena policies of this module), but only through S3 in this region:
        # the key cannot be used directly or by another service.
        Sid       = "UseThroughS3ByAccountIamPolicies"
        Effect    = "Allow"
        Principal = { AWS = local.account_root_arn }
        Action = [
          "kms:Decrypt",
          "kms:DescribeKey",
          "kms:Encrypt",
          "kms:GenerateDataKey*",
          "kms:ReEncrypt*",
        ]
        Resource = "*"
        Condition = {
          StringEquals = {
            "kms:CallerAccount" = local.account_id
            "kms:ViaService"    = local.s3_kms_via_service
          }
        }
      },
    ]
  })

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = var.create_kms_key ? 1 : 0

  name          = "alias/${var.name}-s3-eventstore"
  target_key_id = aws_kms_key.this[0].key_id
}
