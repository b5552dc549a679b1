"""checkov over terraform/: no failed check, and every skip is inline with a reason.

checkov conflicts with the python-hcl2 of the main test environment, so it lives in a
virtual environment of its own: ``export CHECKOV_BIN="$(bash .ci/terraform-tools.sh)"``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from terraform_runner import MODULE_DIR, REPO_ROOT, unavailable

CHECKOV_TIMEOUT_S = 300
INLINE_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+):(.*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    binary = os.environ.get("CHECKOV_BIN")
    if not binary:
        unavailable(
            'CHECKOV_BIN is not set; run: export CHECKOV_BIN="$(bash .ci/terraform-tools.sh)"'
        )
    if not Path(binary).is_file():
        unavailable(f"CHECKOV_BIN={binary} does not exist")
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="WARNING")
    env.pop("BC_API_KEY", None)  # never talk to the Prisma Cloud platform
    proc = subprocess.run(
        [
            binary,
            *shlex.split("--skip-download --framework terraform -d terraform --compact -o json"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_S,
        check=False,
    )
    # Exit 1 means "some check failed" and is asserted on below with the details.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr}"
    report = json.loads(proc.stdout)
    # One report per framework: a dict for one, a list for several.
    reports = report if isinstance(report, list) else [report]
    (terraform_report,) = [r for r in reports if r.get("check_type") == "terraform"]
    return terraform_report  # type: ignore[no-any-return]


def inline_skips() -> dict[str, str]:
    """Every ``#checkov:skip=ID:reason`` comment in the module, examples included."""
    skips: dict[str, str] = {}
    for path in MODULE_DIR.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        for check_id, reason in INLINE_SKIP.findall(path.read_text(encoding="utf-8")):
            skips[check_id] = reason.strip()
    return skips


def test_checkov_scanned_the_module(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert summary["resource_count"] >= 10, summary
    assert summary["passed"] >= 20, summary


def test_checkov_has_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} "
        f"({c['file_path']}:{c['file_line_range'][0]})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_checkov_skips_are_inline_with_a_reason(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    declared = inline_skips()
    for check in skipped:
        comment = (check.get("check_result") or {}).get("suppress_comment", "")
        assert check["check_id"] in declared, f"{check['check_id']} was skipped but not inline"
        # checkov reports "No comment provided" for a skip without a reason.
        assert comment, check["check_id"]
        assert comment != "No comment provided", check["check_id"]
    assert all(len(reason) >= 20 for reason in declared.values()), declared
    # A skip comment that no longer suppresses anything is stale: remove it.
    assert {check["check_id"] for check in skipped} == set(declared)
