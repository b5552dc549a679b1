# The bucket and everything that secures it.

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice of the caller (it needs a second bucket, key and role in another region); the module keeps one region and leaves replication to a wrapper.
  #checkov:skip=CKV2_AWS_62:The event store has no consumer of S3 event notifications; the library lists and reads objects itself.
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? coalesce(var.bucket_name_prefix, "${var.name}-") : null
  force_destroy = var.force_destroy

  # Object Lock is switched on when the bucket is created with a lock mode. The provider
  # replaces a bucket whose object_lock_enabled changes, but S3 (since late 2023) can
  # enable Object Lock on an existing versioned bucket: later changes are ignored here
  # and aws_s3_bucket_object_lock_configuration enables it in place instead.
  object_lock_enabled = var.object_lock_mode != null

  tags = var.tags

  lifecycle {
    ignore_changes = [object_lock_enabled]
  }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # ACLs off: every object belongs to the bucket owner, access is by policy only.
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    # "Suspended" rather than "Disabled" when off: S3 cannot return a bucket to the
    # unversioned state, and the provider refuses an Enabled -> Disabled change.
    status = var.versioning_enabled ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    # One data key per bucket instead of one KMS call per object: turn objects are small
    # and many, so per-object KMS requests would cost more than their storage.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_object_lock_configuration" "this" {
  count = var.object_lock_mode == null ? 0 : 1

  bucket              = aws_s3_bucket.this.id
  object_lock_enabled = "Enabled"

  rule {
    default_retention {
      mode = var.object_lock_mode
      days = var.object_lock_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  count = var.access_log_bucket == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = coalesce(var.access_log_prefix, "s3-access-logs/${local.bucket_name}/")
}

# The bucket policy only denies. Grants come from the IAM policies in iam.tf, which
# callers attach to their roles.
#
# The library sends no SSE headers on PutObject: it relies on the bucket's default
# encryption above. So the policy must NOT deny a missing
# x-amz-server-side-encryption header (that would reject every write of the library);
# it denies only requests that explicitly ask for something else: another algorithm,
# another KMS key, or a customer-provided key (SSE-C bypasses KMS entirely).
locals {
  bucket_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = {
          Bool = { "aws:SecureTransport" = "false" }
        }
      },
      {
        Sid       = "DenyOutdatedTls"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
        Condition = {
          NumericLessThan = { "s3:TlsVersion" = tonumber(var.min_tls_version) }
        }
      },
      {
        # Header present (Null = false) and not aws:kms: an explicit SSE-S3 or DSSE request.
        Sid       = "DenyEncryptionOtherThanKms"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${local.bucket_arn}/*"
        Condition = {
          Null            = { "s3:x-amz-server-side-encryption" = "false" }
          StringNotEquals = { "s3:x-amz-server-side-encryption" = "aws:kms" }
        }
      },
      {
        # Key id present and not this key's ARN. Clients that name the key must use the
        # full ARN: a key id or alias is compared literally and denied.
        Sid       = "DenyOtherKmsKeys"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${local.bucket_arn}/*"
        Condition = {
          Null            = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = "false" }
          StringNotEquals = { "s3:x-amz-server-side-encryption-aws-kms-key-id" = local.kms_key_arn }
        }
      },
      {
        Sid       = "DenyCustomerProvidedKeys"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:PutObject"
        Resource  = "${local.bucket_arn}/*"
        Condition = {
          Null = { "s3:x-amz-server-side-encryption-customer-algorithm" = "false" }
        }
      },
    ]
  })
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = local.bucket_policy

  # PutBucketPolicy races the public access block on a new bucket; order them.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
