# One writer and one reader policy per tenant, each confined to its tenant's prefix.

mock_provider "aws" {
  source = "./tests/mocks"
}

override_resource {
  target          = aws_kms_key.this
  override_during = plan
  values = {
    arn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  }
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
  tenants     = ["acme", "globex"]
}

run "tenant_policies" {
  command = plan

  assert {
    condition     = toset(keys(aws_iam_policy.store)) == toset(["admin", "reader", "writer", "tenant-acme-reader", "tenant-acme-writer", "tenant-globex-reader", "tenant-globex-writer"])
    error_message = "Each tenant gets a reader and a writer policy, next to the store-wide ones."
  }

  assert {
    condition = {
      for s in jsondecode(aws_iam_policy.store["tenant-acme-writer"].policy).Statement : s.Sid => [s.Action, s.Resource, try(s.Condition.StringLike["s3:prefix"], null)]
      if s.Sid != "StoreKeyThroughS3"
      } == {
      ListUnderPrefix    = [["s3:ListBucket"], "arn:aws:s3:::acme-agent-events", ["agent-events/tenants/acme/*"]]
      ObjectsUnderPrefix = [["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], "arn:aws:s3:::acme-agent-events/agent-events/tenants/acme/*", null]
    }
    error_message = "The acme writer may list and touch objects under agent-events/tenants/acme/ only."
  }

  assert {
    condition = alltrue(flatten([
      for key, policy in aws_iam_policy.store : [
        for s in jsondecode(policy.policy).Statement :
        !strcontains(jsonencode(s), "tenants/globex/") if startswith(key, "tenant-acme-")
      ]
    ]))
    error_message = "No acme policy may mention globex's prefix."
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_policy.store["tenant-globex-reader"].policy).Statement : s.Action] == [["s3:ListBucket"], ["s3:GetObject"], ["kms:Decrypt"]]
    error_message = "Tenant readers get the reader actions."
  }

  assert {
    condition     = output.tenants["acme"].prefix == "agent-events/tenants/acme/" && output.tenants["acme"].s3_url == "s3://acme-agent-events/agent-events/tenants/acme/" && output.tenants["globex"].writer_policy_json == aws_iam_policy.store["tenant-globex-writer"].policy
    error_message = "The tenants output gives each tenant's prefix, s3_url and policies."
  }

  assert {
    condition     = aws_iam_policy.store["tenant-acme-writer"].name == "agent-events-eventstore-tenant-acme-writer"
    error_message = "Tenant policies are named <name>-eventstore-tenant-<tenant>-<role>."
  }
}
