# A regulated deployment: turns are WORM-locked in COMPLIANCE mode for seven years, then
# expire; every request is logged to an existing access-log bucket; each tenant's workers
# get a policy confined to their own prefix; the KMS key has named administrators.
#
# Read the module README's Object Lock section before applying: COMPLIANCE retention
# cannot be shortened or removed by anyone, including the account root, and the bucket
# cannot be deleted while locked objects remain.

terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 6.0"
    }
  }
}

variable "region" {
  description = "AWS region for the event store."
  type        = string
  default     = "eu-central-1"
}

variable "access_log_bucket" {
  description = "Existing bucket (SSE-S3, log delivery allowed) that receives the S3 server access logs."
  type        = string
}

variable "kms_key_administrator_arns" {
  description = "Roles that administer the KMS key; include the role that runs Terraform."
  type        = list(string)
}

variable "tenant_worker_role_names" {
  description = "Per tenant, the name of the IAM role its agent workers run as."
  type        = map(string)
  default     = {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      data-classification = "restricted"
      retention           = "7y"
    }
  }
}

module "eventstore" {
  source = "../.."

  name        = "agent-events-prod"
  bucket_name = "acme-agent-events-prod"
  prefix      = "prod/"

  # Seven years of WORM retention, then expiry (plus 30 days for noncurrent versions).
  object_lock_mode                   = "COMPLIANCE"
  object_lock_days                   = 2557
  expiration_days                    = 2558
  noncurrent_version_expiration_days = 30

  # Segments (large, compacted objects) go to Deep Archive after a year; turn objects stay
  # in STANDARD whatever their age (see the README for why).
  transition_to_standard_ia_days  = 30
  transition_to_glacier_ir_days   = 90
  transition_to_deep_archive_days = 365

  kms_key_administrator_arns = var.kms_key_administrator_arns
  access_log_bucket          = var.access_log_bucket

  tenants = keys(var.tenant_worker_role_names)

  athena_bytes_scanned_cutoff_per_query = 10737418240 # 10 GiB
}

resource "aws_iam_role_policy_attachment" "tenant_writer" {
  for_each = var.tenant_worker_role_names

  role       = each.value
  policy_arn = module.eventstore.tenants[each.key].writer_policy_arn
}

output "tenant_s3_urls" {
  description = "Per tenant, the URL its workers pass to S3EventStore.from_url()."
  value       = { for tenant, t in module.eventstore.tenants : tenant => t.s3_url }
}

output "admin_policy_arn" {
  description = "Attach to break-glass operators only; deletes still wait for the retention period."
  value       = module.eventstore.admin_policy_arn
}

output "athena_workgroup_name" {
  description = "Run queries over the turn_events table in this workgroup."
  value       = module.eventstore.athena_workgroup_name
}
