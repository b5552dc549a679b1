"""terraform fmt, validate and test on the module, and init + validate of each example.

All offline: the AWS provider comes from a local filesystem mirror and `terraform test`
plans against `mock_provider "aws"` (see terraform/tests/*.tftest.hcl).
"""

from __future__ import annotations

import json
import re
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from terraform_runner import EXAMPLES, MODULE_DIR

if TYPE_CHECKING:
    from pathlib import Path

    from terraform_runner import Terraform

RUN_BLOCK = re.compile(r'^run\s+"([^"]+)"\s*\{', re.MULTILINE)


def declared_test_runs() -> dict[str, list[str]]:
    """The run blocks of each .tftest.hcl file, read from the source."""
    return {
        f"tests/{path.name}": RUN_BLOCK.findall(path.read_text(encoding="utf-8"))
        for path in sorted((MODULE_DIR / "tests").glob("*.tftest.hcl"))
    }


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse terraform's -json event stream, ignoring any non-JSON noise."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_fmt(terraform: Terraform, module_copy: Path) -> None:
    proc = terraform.run(
        ["fmt", "-check", "-recursive", "-diff", "-no-color", str(module_copy)],
        module_copy,
        check=False,
    )
    assert proc.returncode == 0, (
        "terraform fmt -check -recursive terraform/ found unformatted files; run "
        f"`terraform fmt -recursive terraform/`:\n{proc.stdout}{proc.stderr}"
    )


def test_validate(terraform: Terraform, initialized_module: Path) -> None:
    proc = terraform.run(["validate", "-json", "-no-color"], initialized_module, check=False)
    result = json.loads(proc.stdout)
    diagnostics = "\n".join(
        f"{d['severity']}: {d['summary']}: {d.get('detail', '')} "
        f"({d.get('range', {}).get('filename', '?')}:{d.get('range', {}).get('start', {}).get('line', '?')})"
        for d in result["diagnostics"]
    )
    assert result["valid"], f"terraform validate failed:\n{diagnostics}"
    # Warnings are mostly deprecations of provider attributes: fix them while they are cheap.
    assert result["warning_count"] == 0, f"terraform validate warned:\n{diagnostics}"


def test_terraform_test_runs_pass(terraform: Terraform, initialized_module: Path) -> None:
    declared = declared_test_runs()
    assert sum(len(runs) for runs in declared.values()) >= 20, declared

    proc = terraform.run(["test", "-json", "-no-color"], initialized_module, check=False)
    events = json_lines(proc.stdout)

    found = next((e["test_abstract"] for e in events if e.get("type") == "test_abstract"), None)
    assert found == declared, (
        "terraform test did not pick up exactly the run blocks in terraform/tests/: "
        f"found {found}, declared {declared}"
    )

    statuses = {
        (e["test_run"]["path"], e["test_run"]["run"]): e["test_run"].get("status")
        for e in events
        if e.get("type") == "test_run" and e["test_run"].get("progress") == "complete"
    }
    errors = [e["@message"] for e in events if e.get("@level") == "error"]
    not_passed = {key: status for key, status in statuses.items() if status != "pass"}
    details = "\n".join(errors) + f"\n--- stderr ---\n{proc.stderr}"
    assert not not_passed, f"terraform test runs did not pass: {not_passed}\n{details}"
    assert proc.returncode == 0, f"terraform test exited {proc.returncode}\n{details}"

    summary = next(e["test_summary"] for e in events if e.get("type") == "test_summary")
    total = sum(len(runs) for runs in declared.values())
    assert summary == {"status": "pass", "passed": total, "failed": 0, "errored": 0, "skipped": 0}


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_inits_and_validates(
    terraform: Terraform, tmp_path: Path, module_copy: Path, example: str
) -> None:
    # Each example refers to the module as "../..": copy the whole module tree.
    tree = tmp_path / "terraform"
    shutil.copytree(module_copy, tree)
    workdir = tree / "examples" / example
    terraform.init(workdir)
    proc = terraform.run(["validate", "-json", "-no-color"], workdir, check=False)
    result = json.loads(proc.stdout)
    assert result["valid"], json.dumps(result, indent=2)
    assert result["warning_count"] == 0, json.dumps(result, indent=2)
