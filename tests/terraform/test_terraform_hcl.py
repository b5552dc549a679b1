"""Structural facts about the Terraform module, read from its HCL with python-hcl2.

These need neither terraform nor a provider; they pin what a reviewer would look for
first (the role action lists, the security resources, the documented inputs).
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import pytest
from policy_actions import declared_s3_actions, load_hcl_file, load_module, module_locals
from terraform_runner import EXAMPLES, MODULE_DIR, unavailable

# The actions issue 3 specifies for each role; the library's own test compares the
# declared lists with the S3 operations it records.
EXPECTED_S3_ACTIONS = {
    "reader": {"s3:GetObject", "s3:ListBucket"},
    "writer": {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload"},
    "admin": {
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:ListBucketVersions",
    },
}
EXPECTED_KMS_ACTIONS = {
    "reader": ["kms:Decrypt"],
    "writer": ["kms:Decrypt", "kms:GenerateDataKey"],
    "admin": ["kms:Decrypt", "kms:GenerateDataKey"],
}


@pytest.fixture(scope="module", autouse=True)
def _require_hcl2() -> None:
    if importlib.util.find_spec("hcl2") is None:
        unavailable("python-hcl2 is not installed (pip install python-hcl2)")


@pytest.fixture(scope="module")
def module() -> dict[str, list[Any]]:
    return load_module()


def resources(module: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in module.get("resource", []):
        found.update(block.get(kind, {}))
    return found


def named_blocks(module: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Variables or outputs, by name."""
    found: dict[str, dict[str, Any]] = {}
    for block in module.get(kind, []):
        found.update(block)
    return found


def test_declared_s3_actions_are_exactly_the_specified_ones() -> None:
    assert declared_s3_actions() == EXPECTED_S3_ACTIONS


def test_each_role_extends_the_one_before() -> None:
    actions = declared_s3_actions()
    assert actions["reader"] < actions["writer"] < actions["admin"]


def test_action_lists_have_no_duplicates() -> None:
    found = module_locals()
    for role in EXPECTED_S3_ACTIONS:
        listed = found[f"{role}_s3_actions"]
        assert len(listed) == len(set(listed)), f"{role}_s3_actions repeats an action: {listed}"


def test_kms_actions_per_role() -> None:
    found = module_locals()
    assert {
        role: found[f"{role}_kms_actions"] for role in EXPECTED_KMS_ACTIONS
    } == EXPECTED_KMS_ACTIONS


def test_bucket_level_actions_cover_the_list_actions() -> None:
    # Everything else is granted on object ARNs; a list action granted there would not work.
    assert set(module_locals()["s3_bucket_level_actions"]) == {
        "s3:ListBucket",
        "s3:ListBucketVersions",
    }


def test_provider_constraint_and_terraform_version() -> None:
    (terraform_block,) = load_hcl_file(MODULE_DIR / "versions.tf")["terraform"]
    (providers,) = terraform_block["required_providers"]
    assert providers["aws"] == {"source": "hashicorp/aws", "version": ">= 5.0, < 6.0"}
    # Cross-variable validation blocks need 1.9.
    assert terraform_block["required_version"] == ">= 1.9.0"


def test_every_variable_is_typed_described_and_prefix_is_validated(
    module: dict[str, list[Any]],
) -> None:
    variables = named_blocks(module, "variable")
    undocumented = [name for name, body in variables.items() if not body.get("description")]
    untyped = [name for name, body in variables.items() if "type" not in body]
    assert not undocumented, undocumented
    assert not untyped, untyped

    conditions = " ".join(v["condition"] for v in variables["prefix"]["validation"])
    for needle in ('startswith(var.prefix, "/")', 'endswith(var.prefix, "/")', '"//"', '".."'):
        assert needle in conditions, f"the prefix validation lacks {needle}"
    for name in (
        "object_lock_mode",
        "transition_to_glacier_ir_days",
        "transition_to_deep_archive_days",
    ):
        assert variables[name].get("validation"), f"var.{name} has no validation"


def test_every_validation_has_a_message(module: dict[str, list[Any]]) -> None:
    for name, body in named_blocks(module, "variable").items():
        for validation in body.get("validation", []):
            message = validation.get("error_message", "")
            assert message.endswith((".", ")")), (name, message)
            assert len(message) > 20, (name, message)


def test_required_outputs_exist_and_are_described(module: dict[str, list[Any]]) -> None:
    outputs = named_blocks(module, "output")
    required = {
        "bucket_name",
        "bucket_arn",
        "prefix",
        "region",
        "kms_key_arn",
        "reader_policy_arn",
        "writer_policy_arn",
        "admin_policy_arn",
        "reader_policy_json",
        "writer_policy_json",
        "admin_policy_json",
        "glue_database_name",
        "glue_table_name",
        "athena_workgroup_name",
        "s3_url",
    }
    assert required <= outputs.keys(), required - outputs.keys()
    assert all(body.get("description") for body in outputs.values())


def test_bucket_controls(module: dict[str, list[Any]]) -> None:
    (ownership,) = resources(module, "aws_s3_bucket_ownership_controls").values()
    assert ownership["rule"] == [{"object_ownership": "BucketOwnerEnforced"}]

    (public_access,) = resources(module, "aws_s3_bucket_public_access_block").values()
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert public_access[flag] is True, flag

    (encryption,) = resources(module, "aws_s3_bucket_server_side_encryption_configuration").values()
    (rule,) = encryption["rule"]
    assert rule["bucket_key_enabled"] is True
    assert rule["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"

    (key,) = resources(module, "aws_kms_key").values()
    assert key["enable_key_rotation"] is True
    assert "policy" in key

    (bucket,) = resources(module, "aws_s3_bucket").values()
    assert bucket["object_lock_enabled"] == "${var.object_lock_mode != null}"


def test_bucket_policy_never_denies_a_missing_encryption_header() -> None:
    # The library relies on default encryption and sends no SSE header: a Null condition
    # of "true" on an SSE key would reject all of its writes.
    source = (MODULE_DIR / "bucket.tf").read_text(encoding="utf-8")
    assert re.search(r'Null\s*=\s*\{[^}]*=\s*"true"', source) is None
    for key in (
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    ):
        assert f'Null            = {{ "{key}" = "false" }}' in source, key


def test_lifecycle_aborts_multipart_uploads_bucket_wide(module: dict[str, list[Any]]) -> None:
    (lifecycle,) = resources(module, "aws_s3_bucket_lifecycle_configuration").values()
    rules = [entry["rule"] for entry in lifecycle["dynamic"]]
    abort = [r for r in rules if "abort_incomplete_multipart_upload" in r["content"][0]]
    assert len(abort) == 1
    assert abort[0]["content"][0]["filter"] == [{}], "the abort rule must cover the whole bucket"
    # checkov only sees the last dynamic `rule` block (see lifecycle.tf).
    assert rules[-1] is abort[0]


def test_transitions_are_guarded_by_size_filters(module: dict[str, list[Any]]) -> None:
    (lifecycle,) = resources(module, "aws_s3_bucket_lifecycle_configuration").values()
    for entry in lifecycle["dynamic"]:
        content = entry["rule"]["content"][0]
        if any("transition" in d for d in content.get("dynamic", [])):
            assert "object_size_greater_than" in repr(content["filter"])
    variables = named_blocks(module, "variable")
    assert variables["infrequent_access_min_object_size_bytes"]["default"] == 131072
    assert variables["archive_min_object_size_bytes"]["default"] == 1048576


def test_glue_table_matches_the_key_layout(module: dict[str, list[Any]]) -> None:
    tables = resources(module, "aws_glue_catalog_table")
    assert set(tables) == {"turn_events", "turn_events_by_thread", "published_events"}
    for name, table in tables.items():
        if name == "published_events":
            continue  # the Parquet tier: tests/terraform/test_published_table.py
        (storage,) = table["storage_descriptor"]
        assert storage["location"] == "s3://${local.bucket_name}/${local.threads_prefix}"
        serde = storage["ser_de_info"][0]["serialization_library"]
        assert serde == "org.openx.data.jsonserde.JsonSerDe"
    assert module_locals()["threads_prefix"] == "${local.prefix}threads/"
    template = tables["turn_events_by_thread"]["parameters"]["storage.location.template"]
    # `$${` is HCL's escape for a literal `${`: Athena fills in the partition values.
    assert template.endswith("${local.threads_prefix}shard=$${shard}/thread=$${thread}/")
    columns = {c["name"]: c["type"] for c in module_locals()["glue_columns"]}
    assert columns["sequence"] == "decimal(20,0)"
    assert {"event_id", "sequence", "timestamp", "type"} <= columns.keys()


def test_iam_policies_are_resources(module: dict[str, list[Any]]) -> None:
    policies = resources(module, "aws_iam_policy")
    assert set(policies) == {"store", "athena_query"}


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_call_the_module(example: str) -> None:
    parsed = load_module(MODULE_DIR / "examples" / example)
    calls = named_blocks(parsed, "module")
    assert [call["source"] for call in calls.values()] == ["../.."]


def test_working_state_is_ignored() -> None:
    ignored = (MODULE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert {".terraform/", ".terraform.lock.hcl", "*.tfstate"} <= set(ignored)


def test_readme_documents_every_input_and_output(module: dict[str, list[Any]]) -> None:
    readme = (MODULE_DIR / "README.md").read_text(encoding="utf-8")
    for kind in ("variable", "output"):
        missing = [name for name in named_blocks(module, kind) if f"| `{name}` |" not in readme]
        assert not missing, f"terraform/README.md has no table row for these {kind}s: {missing}"
