# Optional Object Lock (WORM) retention.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
}

run "compliance_mode" {
  command = plan

  variables {
    object_lock_mode = "COMPLIANCE"
    object_lock_days = 2555
  }

  assert {
    condition     = aws_s3_bucket.this.object_lock_enabled
    error_message = "Object Lock must be enabled when the bucket is created."
  }

  assert {
    condition = [for r in aws_s3_bucket_object_lock_configuration.this[0].rule : {
      mode = r.default_retention[0].mode
      days = r.default_retention[0].days
    }] == [{ mode = "COMPLIANCE", days = 2555 }]
    error_message = "Default retention must be COMPLIANCE for 2555 days."
  }

  assert {
    condition     = aws_s3_bucket_object_lock_configuration.this[0].object_lock_enabled == "Enabled"
    error_message = "The lock configuration enables Object Lock itself, so existing buckets get it in place."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "Object Lock needs versioning."
  }
}

run "governance_mode" {
  command = plan

  variables {
    object_lock_mode = "GOVERNANCE"
    object_lock_days = 30
  }

  assert {
    condition     = aws_s3_bucket.this.object_lock_enabled && aws_s3_bucket_object_lock_configuration.this[0].rule[0].default_retention[0].mode == "GOVERNANCE"
    error_message = "GOVERNANCE mode must be passed through."
  }
}
