# Input validation: each run sets one bad input and expects exactly that variable's
# validation to fail the plan.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name        = "agent-events"
  bucket_name = "acme-agent-events"
}

run "rejects_prefix_with_leading_slash" {
  command = plan

  variables {
    prefix = "/agent-events/"
  }

  expect_failures = [var.prefix]
}

run "rejects_prefix_without_trailing_slash" {
  command = plan

  variables {
    prefix = "agent-events"
  }

  expect_failures = [var.prefix]
}

run "rejects_prefix_with_empty_segment" {
  command = plan

  variables {
    prefix = "agent-events//prod/"
  }

  expect_failures = [var.prefix]
}

run "rejects_prefix_with_dot_dot" {
  command = plan

  variables {
    prefix = "agent-events/../prod/"
  }

  expect_failures = [var.prefix]
}

run "rejects_prefix_with_iam_wildcard" {
  command = plan

  variables {
    prefix = "agent-*/"
  }

  expect_failures = [var.prefix]
}

run "rejects_invalid_name" {
  command = plan

  variables {
    name = "Agent_Events"
  }

  expect_failures = [var.name]
}

run "rejects_bucket_name_with_dots" {
  command = plan

  variables {
    bucket_name = "acme.agent.events"
  }

  expect_failures = [var.bucket_name]
}

run "rejects_bucket_name_and_prefix_together" {
  command = plan

  variables {
    bucket_name_prefix = "acme-"
  }

  expect_failures = [var.bucket_name]
}

run "rejects_standard_ia_before_30_days" {
  command = plan

  variables {
    transition_to_standard_ia_days = 10
  }

  expect_failures = [var.transition_to_standard_ia_days]
}

run "rejects_glacier_ir_not_after_standard_ia" {
  command = plan

  variables {
    transition_to_standard_ia_days = 60
    transition_to_glacier_ir_days  = 75
  }

  expect_failures = [var.transition_to_glacier_ir_days]
}

run "rejects_deep_archive_before_glacier_ir" {
  command = plan

  variables {
    transition_to_glacier_ir_days   = 200
    transition_to_deep_archive_days = 180
  }

  expect_failures = [var.transition_to_deep_archive_days]
}

run "rejects_glacier_after_deep_archive" {
  command = plan

  variables {
    transition_to_glacier_days      = 365
    transition_to_deep_archive_days = 300
  }

  expect_failures = [var.transition_to_deep_archive_days]
}

run "rejects_expiration_before_last_transition" {
  command = plan

  variables {
    expiration_days = 100
  }

  expect_failures = [var.expiration_days]
}

run "rejects_fractional_size_threshold" {
  command = plan

  variables {
    archive_min_object_size_bytes = 1.5
  }

  expect_failures = [var.archive_min_object_size_bytes]
}

run "rejects_unknown_object_lock_mode" {
  command = plan

  variables {
    object_lock_mode = "STRICT"
    object_lock_days = 30
  }

  expect_failures = [var.object_lock_mode]
}

run "rejects_object_lock_days_without_mode" {
  command = plan

  variables {
    object_lock_days = 30
  }

  expect_failures = [var.object_lock_days]
}

run "rejects_object_lock_mode_without_days" {
  command = plan

  variables {
    object_lock_mode = "COMPLIANCE"
  }

  expect_failures = [var.object_lock_days]
}

run "rejects_object_lock_without_versioning" {
  command = plan

  variables {
    object_lock_mode   = "GOVERNANCE"
    object_lock_days   = 30
    versioning_enabled = false
  }

  expect_failures = [var.object_lock_mode]
}

run "rejects_kms_key_arn_while_creating_a_key" {
  command = plan

  variables {
    kms_key_arn = "arn:aws:kms:us-east-1:123456789012:key/99999999-8888-7777-6666-555555555555"
  }

  expect_failures = [var.kms_key_arn]
}

run "rejects_missing_kms_key_arn" {
  command = plan

  variables {
    create_kms_key = false
  }

  expect_failures = [var.kms_key_arn]
}

run "rejects_kms_alias_instead_of_arn" {
  command = plan

  variables {
    create_kms_key = false
    kms_key_arn    = "alias/agent-events"
  }

  expect_failures = [var.kms_key_arn]
}

run "rejects_athena_results_inside_store" {
  command = plan

  variables {
    athena_results_prefix = "agent-events/athena/"
  }

  expect_failures = [var.athena_results_prefix]
}

run "rejects_invalid_tenant_name" {
  command = plan

  variables {
    tenants = ["acme", "globex/../acme"]
  }

  expect_failures = [var.tenants]
}

run "rejects_duplicate_tenants" {
  command = plan

  variables {
    tenants = ["acme", "acme"]
  }

  expect_failures = [var.tenants]
}

run "rejects_tls_below_1_2" {
  command = plan

  variables {
    min_tls_version = "1.0"
  }

  expect_failures = [var.min_tls_version]
}
