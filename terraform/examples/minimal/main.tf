# The smallest useful stack: a bucket with a generated name, a KMS key created by the
# module, the reader / writer / admin policies and the Athena table, all with defaults.
#
#   terraform init && terraform apply
#   s3-eventstore ... --url "$(terraform output -raw s3_url)"

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
  default     = "us-east-1"
}

provider "aws" {
  region = var.region
}

module "eventstore" {
  source = "../.."

  name = "agent-events"
}

output "s3_url" {
  description = "Pass to S3EventStore.from_url()."
  value       = module.eventstore.s3_url
}

output "writer_policy_arn" {
  description = "Attach to the agent workers' role."
  value       = module.eventstore.writer_policy_arn
}

output "reader_policy_arn" {
  description = "Attach to analytics roles (with athena_query_policy_arn to use Athena)."
  value       = module.eventstore.reader_policy_arn
}

output "athena_workgroup_name" {
  description = "Run queries over the turn_events table in this workgroup."
  value       = module.eventstore.athena_workgroup_name
}
