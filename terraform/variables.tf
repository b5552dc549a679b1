# Inputs of the s3-eventstore module. Cross-variable checks need Terraform >= 1.9.

# ---------------------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------------------

variable "name" {
  description = "Short name of this event store. Prefixes the KMS alias, IAM policy names, Glue database and Athena workgroup, and (with no bucket_name) the generated bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name))
    error_message = "name must be 2 to 32 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen."
  }
}

variable "bucket_name" {
  description = "Exact name of the bucket to create. Leave null to let AWS generate a unique name from bucket_name_prefix."
  type        = string
  default     = null

  validation {
    # Dots are legal in bucket names but break TLS for virtual-hosted-style requests
    # (the wildcard certificate covers one label only), so they are refused here.
    condition = var.bucket_name == null || (
      can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", coalesce(var.bucket_name, "-"))) &&
      !startswith(coalesce(var.bucket_name, "-"), "xn--") &&
      !endswith(coalesce(var.bucket_name, "-"), "-s3alias") &&
      !endswith(coalesce(var.bucket_name, "-"), "--ol-s3")
    )
    error_message = "bucket_name must be 3 to 63 characters of lowercase letters, digits and hyphens (no dots), start and end with a letter or digit, and not use the reserved xn-- prefix or -s3alias / --ol-s3 suffixes."
  }

  validation {
    condition     = var.bucket_name == null || var.bucket_name_prefix == null
    error_message = "Set at most one of bucket_name and bucket_name_prefix."
  }
}

variable "bucket_name_prefix" {
  description = "Prefix for a generated unique bucket name (AWS appends 26 characters). Used only when bucket_name is null; defaults to \"<name>-\"."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name_prefix == null || can(regex("^[a-z0-9][a-z0-9-]{0,36}$", coalesce(var.bucket_name_prefix, "-")))
    error_message = "bucket_name_prefix must be 1 to 37 characters of lowercase letters, digits and hyphens (no dots) and start with a letter or digit."
  }
}

variable "prefix" {
  description = "Key prefix of the event store inside the bucket, exactly as the library is configured with it: empty (the whole bucket) or ending with \"/\". Objects live under <prefix>threads/."
  type        = string
  default     = "agent-events/"
  nullable    = false

  validation {
    condition     = !startswith(var.prefix, "/")
    error_message = "prefix must not start with \"/\" (S3 keys have no leading slash; the library would never match it)."
  }

  validation {
    condition     = var.prefix == "" || endswith(var.prefix, "/")
    error_message = "prefix must be empty or end with \"/\", e.g. \"agent-events/\"."
  }

  validation {
    condition     = !strcontains(var.prefix, "//")
    error_message = "prefix must not contain an empty path segment (\"//\")."
  }

  validation {
    condition     = !strcontains(var.prefix, "..") && !contains(split("/", var.prefix), ".")
    error_message = "prefix must not contain \"..\" or a \".\" path segment."
  }

  validation {
    # `*` and `?` are IAM wildcards and `$` starts an IAM policy variable: any of them in a
    # resource ARN would widen the policies this module writes.
    condition     = can(regex("^[A-Za-z0-9!_.'()=/-]*$", var.prefix))
    error_message = "prefix may only contain letters, digits, \"/\" and the characters ! _ . ' ( ) = - (no IAM wildcards such as * or ?, no $)."
  }

  validation {
    condition     = length(var.prefix) <= 512
    error_message = "prefix must be at most 512 characters long (keys add about 200 characters and S3 allows 1024 bytes)."
  }
}

variable "tags" {
  description = "Tags applied to every taggable resource the module creates."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete a bucket that still holds objects, and an Athena workgroup that still has saved queries. Keep false outside of test stacks. Has no power over objects under Object Lock retention."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------------------
# Encryption
# ---------------------------------------------------------------------------------------

variable "create_kms_key" {
  description = "Create a customer managed KMS key for the bucket (rotation on, key policy defined). Set false and pass kms_key_arn to use an existing key."
  type        = bool
  default     = true
  nullable    = false
}

variable "kms_key_arn" {
  description = "ARN of an existing customer managed KMS key to encrypt the bucket with, when create_kms_key = false. Its key policy must let this account's IAM policies use it through S3."
  type        = string
  default     = null

  validation {
    condition     = var.create_kms_key == (var.kms_key_arn == null)
    error_message = "Set kms_key_arn exactly when create_kms_key = false (the module either creates the key or uses the one passed in)."
  }

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", coalesce(var.kms_key_arn, "-")))
    error_message = "kms_key_arn must be a full KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID); aliases and bare key ids are not accepted because the bucket policy compares the ARN literally."
  }
}

variable "kms_key_deletion_window_in_days" {
  description = "Waiting period before a module-created KMS key is deleted after `terraform destroy`."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_key_deletion_window_in_days >= 7 && var.kms_key_deletion_window_in_days <= 30 && floor(var.kms_key_deletion_window_in_days) == var.kms_key_deletion_window_in_days
    error_message = "kms_key_deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "kms_key_administrator_arns" {
  description = "IAM principals that administer a module-created KMS key. Empty means the account root, which lets the account's IAM policies decide (the AWS default)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.kms_key_administrator_arns : can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:", arn))])
    error_message = "kms_key_administrator_arns must contain IAM or STS principal ARNs (arn:aws:iam::ACCOUNT:...)."
  }
}

variable "min_tls_version" {
  description = "Lowest TLS version the bucket policy accepts (s3:TlsVersion)."
  type        = string
  default     = "1.2"
  nullable    = false

  validation {
    condition     = contains(["1.2", "1.3"], var.min_tls_version)
    error_message = "min_tls_version must be \"1.2\" or \"1.3\"."
  }
}

# ---------------------------------------------------------------------------------------
# Versioning and Object Lock
# ---------------------------------------------------------------------------------------

variable "versioning_enabled" {
  description = "Turn on bucket versioning. Required by Object Lock; protects turns against deletion by a compromised writer (the admin role can still remove versions)."
  type        = bool
  default     = true
  nullable    = false
}

variable "object_lock_mode" {
  description = "Default Object Lock (WORM) retention mode for new objects: GOVERNANCE or COMPLIANCE. null (the default) creates a bucket without Object Lock. Setting it later enables Object Lock on the existing bucket in place; once enabled, Object Lock cannot be turned off again."
  type        = string
  default     = null

  validation {
    condition     = var.object_lock_mode == null || contains(["GOVERNANCE", "COMPLIANCE"], coalesce(var.object_lock_mode, "-"))
    error_message = "object_lock_mode must be null, \"GOVERNANCE\" or \"COMPLIANCE\"."
  }

  validation {
    condition     = var.object_lock_mode == null || var.versioning_enabled
    error_message = "Object Lock requires versioning: set versioning_enabled = true or object_lock_mode = null."
  }
}

variable "object_lock_days" {
  description = "Default Object Lock retention period in days. Required when object_lock_mode is set, must be null otherwise."
  type        = number
  default     = null

  validation {
    condition     = (var.object_lock_mode == null) == (var.object_lock_days == null)
    error_message = "Set object_lock_days together with object_lock_mode, or neither."
  }

  validation {
    condition     = var.object_lock_days == null || try(var.object_lock_days >= 1 && var.object_lock_days <= 36500 && floor(var.object_lock_days) == var.object_lock_days, false)
    error_message = "object_lock_days must be a whole number from 1 to 36500."
  }
}

# ---------------------------------------------------------------------------------------
# Lifecycle of the store's objects
# ---------------------------------------------------------------------------------------

variable "transition_to_standard_ia_days" {
  description = "Days after creation to move objects larger than infrequent_access_min_object_size_bytes to STANDARD_IA. null disables."
  type        = number
  default     = 30

  validation {
    condition     = var.transition_to_standard_ia_days == null || try(var.transition_to_standard_ia_days >= 30 && floor(var.transition_to_standard_ia_days) == var.transition_to_standard_ia_days, false)
    error_message = "transition_to_standard_ia_days must be null or a whole number of at least 30 (the S3 minimum for STANDARD_IA)."
  }
}

variable "transition_to_glacier_ir_days" {
  description = "Days after creation to move objects larger than infrequent_access_min_object_size_bytes to GLACIER_IR. null disables."
  type        = number
  default     = 90

  validation {
    condition     = var.transition_to_glacier_ir_days == null || try(var.transition_to_glacier_ir_days >= 0 && floor(var.transition_to_glacier_ir_days) == var.transition_to_glacier_ir_days, false)
    error_message = "transition_to_glacier_ir_days must be null or a whole number of days."
  }

  validation {
    # STANDARD_IA bills at least 30 days of storage; S3 also rejects a later transition in
    # the same rule that comes sooner than that.
    condition     = var.transition_to_glacier_ir_days == null || var.transition_to_standard_ia_days == null || try(var.transition_to_glacier_ir_days >= var.transition_to_standard_ia_days + 30, false)
    error_message = "transition_to_glacier_ir_days must be at least 30 days after transition_to_standard_ia_days (STANDARD_IA < GLACIER_IR)."
  }
}

variable "transition_to_glacier_days" {
  description = "Days after creation to move objects larger than archive_min_object_size_bytes to GLACIER (Flexible Retrieval). null (the default) disables; rarely worth it after GLACIER_IR."
  type        = number
  default     = null

  validation {
    condition     = var.transition_to_glacier_days == null || try(var.transition_to_glacier_days >= 0 && floor(var.transition_to_glacier_days) == var.transition_to_glacier_days, false)
    error_message = "transition_to_glacier_days must be null or a whole number of days."
  }

  validation {
    condition = var.transition_to_glacier_days == null || try(
      var.transition_to_glacier_days > coalesce(var.transition_to_glacier_ir_days, -1) &&
      var.transition_to_glacier_days >= coalesce(var.transition_to_standard_ia_days, -30) + 30,
      false
    )
    error_message = "transition_to_glacier_days must come after transition_to_glacier_ir_days and at least 30 days after transition_to_standard_ia_days (STANDARD_IA < GLACIER_IR < GLACIER)."
  }
}

variable "transition_to_deep_archive_days" {
  description = "Days after creation to move objects larger than archive_min_object_size_bytes to DEEP_ARCHIVE. null disables."
  type        = number
  default     = 180

  validation {
    condition     = var.transition_to_deep_archive_days == null || try(var.transition_to_deep_archive_days >= 0 && floor(var.transition_to_deep_archive_days) == var.transition_to_deep_archive_days, false)
    error_message = "transition_to_deep_archive_days must be null or a whole number of days."
  }

  validation {
    condition = var.transition_to_deep_archive_days == null || try(
      var.transition_to_deep_archive_days > coalesce(var.transition_to_glacier_ir_days, -1) &&
      var.transition_to_deep_archive_days > coalesce(var.transition_to_glacier_days, -1) &&
      var.transition_to_deep_archive_days >= coalesce(var.transition_to_standard_ia_days, -30) + 30,
      false
    )
    error_message = "transition_to_deep_archive_days must come after every other transition (STANDARD_IA < GLACIER_IR < GLACIER < DEEP_ARCHIVE), and at least 30 days after transition_to_standard_ia_days."
  }
}

variable "infrequent_access_min_object_size_bytes" {
  description = "Only objects strictly larger than this many bytes move to STANDARD_IA and GLACIER_IR, which bill every object as at least 128 KiB. Turn objects are a few KiB and stay in STANDARD; compacted segments move."
  type        = number
  default     = 131072
  nullable    = false

  validation {
    condition     = var.infrequent_access_min_object_size_bytes >= 0 && floor(var.infrequent_access_min_object_size_bytes) == var.infrequent_access_min_object_size_bytes
    error_message = "infrequent_access_min_object_size_bytes must be a whole number of bytes, 0 or more."
  }
}

variable "archive_min_object_size_bytes" {
  description = "Only objects strictly larger than this many bytes move to GLACIER and DEEP_ARCHIVE, which add about 40 KiB of billed metadata and a per-object transition fee. Default 1 MiB."
  type        = number
  default     = 1048576
  nullable    = false

  validation {
    condition     = var.archive_min_object_size_bytes >= 0 && floor(var.archive_min_object_size_bytes) == var.archive_min_object_size_bytes
    error_message = "archive_min_object_size_bytes must be a whole number of bytes, 0 or more."
  }
}

variable "expiration_days" {
  description = "Days after creation to expire the store's objects (with versioning on this adds a delete marker; noncurrent_version_expiration_days then removes the data). null (the default) keeps turns forever."
  type        = number
  default     = null

  validation {
    condition     = var.expiration_days == null || try(var.expiration_days >= 1 && floor(var.expiration_days) == var.expiration_days, false)
    error_message = "expiration_days must be null or a whole number of at least 1."
  }

  validation {
    condition = var.expiration_days == null || try(
      var.expiration_days > max(
        coalesce(var.transition_to_standard_ia_days, 0),
        coalesce(var.transition_to_glacier_ir_days, 0),
        coalesce(var.transition_to_glacier_days, 0),
        coalesce(var.transition_to_deep_archive_days, 0),
      ),
      false
    )
    error_message = "expiration_days must be later than every enabled transition (set the transitions to null to expire sooner)."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after an object version becomes noncurrent (overwritten, deleted or expired) to remove it permanently. null keeps noncurrent versions forever. Object Lock retention still wins."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days == null || try(var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days, false)
    error_message = "noncurrent_version_expiration_days must be null or a whole number of at least 1."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which the bucket-wide lifecycle rule aborts unfinished multipart uploads (their parts are billed until then)."
  type        = number
  default     = 7
  nullable    = false

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number of at least 1."
  }
}

# ---------------------------------------------------------------------------------------
# Access logging
# ---------------------------------------------------------------------------------------

variable "access_log_bucket" {
  description = "Name of an existing bucket that receives S3 server access logs for this bucket. null disables access logging. The target must use SSE-S3 (log delivery cannot write SSE-KMS) and allow logging.s3.amazonaws.com to write."
  type        = string
  default     = null

  validation {
    condition     = var.access_log_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.access_log_bucket, "-")))
    error_message = "access_log_bucket must be a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)."
  }
}

variable "access_log_prefix" {
  description = "Key prefix for the access logs in access_log_bucket. null means \"s3-access-logs/<bucket>/\"."
  type        = string
  default     = null

  validation {
    condition     = var.access_log_prefix == null || try(!startswith(var.access_log_prefix, "/") && endswith(var.access_log_prefix, "/"), false)
    error_message = "access_log_prefix must not start with \"/\" and must end with \"/\"."
  }
}

# ---------------------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------------------

variable "iam_policy_path" {
  description = "Path for the IAM policies the module creates."
  type        = string
  default     = "/"
  nullable    = false

  validation {
    condition     = can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.iam_policy_path))
    error_message = "iam_policy_path must start and end with \"/\", e.g. \"/\" or \"/eventstore/\"."
  }
}

variable "tenants" {
  description = "Tenant names. Each gets a writer and a reader policy scoped to <prefix>tenants/<tenant>/, so one tenant's worker cannot read another's threads; configure the library with that longer prefix (see the tenants output)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for t in var.tenants : can(regex("^[A-Za-z0-9_-]{1,64}$", t))])
    error_message = "Each tenant name must be 1 to 64 characters of letters, digits, \"_\" and \"-\" (it becomes a key prefix segment and part of IAM policy names)."
  }

  validation {
    condition     = length(distinct(var.tenants)) == length(var.tenants)
    error_message = "tenants must not contain duplicates."
  }
}

# ---------------------------------------------------------------------------------------
# Analytics (Glue + Athena)
# ---------------------------------------------------------------------------------------

variable "analytics_enabled" {
  description = "Create the Glue database and table over the turn objects, the Athena workgroup and the Athena query policy."
  type        = bool
  default     = true
  nullable    = false
}

variable "glue_database_name" {
  description = "Glue catalog database name. null means the module name with hyphens turned into underscores."
  type        = string
  default     = null

  validation {
    condition     = var.glue_database_name == null || can(regex("^[a-z][a-z0-9_]{0,254}$", coalesce(var.glue_database_name, "-")))
    error_message = "glue_database_name must be lowercase letters, digits and underscores, starting with a letter (Athena needs no quoting then)."
  }
}

variable "glue_table_name" {
  description = "Glue catalog table name for the turn events."
  type        = string
  default     = "turn_events"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,254}$", var.glue_table_name))
    error_message = "glue_table_name must be lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "thread_table_enabled" {
  description = "Also create \"<glue_table_name>_by_thread\", the same data partitioned by shard and thread with partition projection, for single-thread lookups that read one folder instead of the whole store."
  type        = bool
  default     = true
  nullable    = false
}

variable "athena_workgroup_name" {
  description = "Athena workgroup name. null means \"<name>\"."
  type        = string
  default     = null

  validation {
    condition     = var.athena_workgroup_name == null || can(regex("^[A-Za-z0-9._-]{1,128}$", coalesce(var.athena_workgroup_name, "-")))
    error_message = "athena_workgroup_name must be 1 to 128 letters, digits, \".\", \"_\" or \"-\"."
  }
}

variable "athena_results_prefix" {
  description = "Key prefix for Athena query results in the same bucket. Must lie outside the store's prefix."
  type        = string
  default     = "athena-results/"
  nullable    = false

  validation {
    condition     = !startswith(var.athena_results_prefix, "/") && endswith(var.athena_results_prefix, "/") && !strcontains(var.athena_results_prefix, "//") && can(regex("^[A-Za-z0-9!_.'()=/-]+$", var.athena_results_prefix))
    error_message = "athena_results_prefix must be non-empty, not start with \"/\", end with \"/\", contain no \"//\" and only letters, digits, \"/\" and ! _ . ' ( ) = -."
  }

  validation {
    # An empty store prefix covers the whole bucket; that is allowed, results then sit
    # inside it (the README explains what that means for the policies).
    condition     = var.prefix == "" || (!startswith(var.athena_results_prefix, var.prefix) && !startswith(var.prefix, var.athena_results_prefix))
    error_message = "athena_results_prefix and prefix must not contain one another: query results must stay out of the store (and the store out of the results' expiry rule)."
  }
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results expire."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.athena_results_expiration_days >= 1 && floor(var.athena_results_expiration_days) == var.athena_results_expiration_days
    error_message = "athena_results_expiration_days must be a whole number of at least 1."
  }
}

variable "athena_bytes_scanned_cutoff_per_query" {
  description = "Cancel Athena queries in the workgroup that scan more than this many bytes. null means no limit. Minimum 10 MB (10485760)."
  type        = number
  default     = null

  validation {
    condition     = var.athena_bytes_scanned_cutoff_per_query == null || try(var.athena_bytes_scanned_cutoff_per_query >= 10485760, false)
    error_message = "athena_bytes_scanned_cutoff_per_query must be null or at least 10485760 (10 MB), the Athena minimum."
  }
}
