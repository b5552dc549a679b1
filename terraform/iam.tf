# IAM policies for the roles that use the event store. The module creates the policies and
# outputs their ARNs and JSON; callers attach them to their own roles.

locals {
  # ---------------------------------------------------------------------------------
  # The S3 actions of each role: the one place that says what a role may do. The
  # library's test suite compares these lists with the S3 operations the library really
  # issues (tests/terraform/policy_actions.py reads them), so keep them literal lists.
  # ---------------------------------------------------------------------------------

  reader_s3_actions = [
    "s3:GetObject",  # GetObject and HeadObject
    "s3:ListBucket", # ListObjectsV2, only under the store's prefix
  ]

  writer_s3_actions = [
    "s3:GetObject",
    "s3:ListBucket",
    "s3:PutObject",            # PutObject and the multipart upload calls
    "s3:AbortMultipartUpload", # clean up after a failed multipart upload
  ]

  admin_s3_actions = [
    "s3:GetObject",
    "s3:ListBucket",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:ListBucketVersions",
  ]

  # KMS actions each role needs on the bucket key, through S3 only. Reading decrypts;
  # writing asks S3 for a data key (bucket key) and decrypts it again for multipart parts.
  reader_kms_actions = ["kms:Decrypt"]
  writer_kms_actions = ["kms:Decrypt", "kms:GenerateDataKey"]
  admin_kms_actions  = ["kms:Decrypt", "kms:GenerateDataKey"]

  # Actions whose resource is the bucket (and that honour the s3:prefix condition key);
  # every other action above acts on objects.
  s3_bucket_level_actions = ["s3:ListBucket", "s3:ListBucketVersions"]

  store_roles = {
    reader = { s3 = local.reader_s3_actions, kms = local.reader_kms_actions }
    writer = { s3 = local.writer_s3_actions, kms = local.writer_kms_actions }
    admin  = { s3 = local.admin_s3_actions, kms = local.admin_kms_actions }
  }

  store_role_descriptions = {
    reader = "read turns (analytics, replay)"
    writer = "append turns (agent workers)"
    admin  = "read, append and delete turns and their versions"
  }

  # One entry per policy: the store-wide roles, then a writer and a reader per tenant.
  policy_scopes = merge(
    {
      for role, actions in local.store_roles : role => {
        role        = role
        prefix      = local.prefix
        name        = "${var.name}-eventstore-${role}"
        description = "s3-eventstore ${var.name}: ${local.store_role_descriptions[role]} under s3://${local.bucket_name}/${local.prefix}"
      }
    },
    {
      for pair in setproduct(var.tenants, ["reader", "writer"]) : "tenant-${pair[0]}-${pair[1]}" => {
        role        = pair[1]
        prefix      = "${local.prefix}tenants/${pair[0]}/"
        name        = "${var.name}-eventstore-tenant-${pair[0]}-${pair[1]}"
        description = "s3-eventstore ${var.name}, tenant ${pair[0]}: ${local.store_role_descriptions[pair[1]]} under s3://${local.bucket_name}/${local.prefix}tenants/${pair[0]}/"
      }
    },
  )

  policy_documents = {
    for key, scope in local.policy_scopes : key => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "ListUnderPrefix"
          Effect   = "Allow"
          Action   = [for a in local.store_roles[scope.role].s3 : a if contains(local.s3_bucket_level_actions, a)]
          Resource = local.bucket_arn
          # An empty store prefix is the whole bucket, where a list call may carry no
          # prefix at all: IfExists lets it through. Otherwise the prefix is required.
          Condition = {
            (scope.prefix == "" ? "StringLikeIfExists" : "StringLike") = {
              "s3:prefix" = ["${scope.prefix}*"]
            }
          }
        },
        {
          Sid      = "ObjectsUnderPrefix"
          Effect   = "Allow"
          Action   = [for a in local.store_roles[scope.role].s3 : a if !contains(local.s3_bucket_level_actions, a)]
          Resource = "${local.bucket_arn}/${scope.prefix}*"
        },
        {
          # With S3 bucket keys the encryption context is the bucket ARN; objects written
          # without one carry their own ARN. Either way, only this bucket's store prefix.
          Sid      = "StoreKeyThroughS3"
          Effect   = "Allow"
          Action   = local.store_roles[scope.role].kms
          Resource = local.kms_key_arn
          Condition = {
            StringEquals = { "kms:ViaService" = local.s3_kms_via_service }
            StringLike = {
              "kms:EncryptionContext:aws:s3:arn" = [local.bucket_arn, "${local.bucket_arn}/${scope.prefix}*"]
            }
          }
        },
      ]
    })
  }
}

resource "aws_iam_policy" "store" {
  for_each = local.policy_scopes

  name        = each.value.name
  path        = var.iam_policy_path
  description = each.value.description
  policy      = local.policy_documents[each.key]

  tags = var.tags
}
