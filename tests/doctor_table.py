"""README's table of how S3 implementations differ, produced by ``s3-eventstore doctor
--json`` on each server the tests start::

    python -m tests.doctor_table                  # moto, SeaweedFS, s3rver
    python -m tests.doctor_table radosgw          # any subset, radosgw needs Ceph

It prints the Markdown table that README.md holds between the ``doctor-table`` markers;
tests/test_readme.py checks README's columns against live doctor runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3_eventstore.demo.embedded import CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Iterator

SERVERS = ("moto", "seaweedfs", "radosgw", "s3rver")
TITLES = {
    "moto": "moto 5 (tests' default)",
    "seaweedfs": "SeaweedFS 4.48",
    "radosgw": "Ceph radosgw 16.2",
    "s3rver": "s3rver 3",
}
LIBRARY_DOES = {
    "conditional_put": "The finish barrier. Required: without it the store refuses to write "
    "(`UnsafeEndpointError`) unless `allow_unsafe_endpoint=True`.",
    "listing_complete": "Required: every read lists a thread's folder page by page; a key "
    "lost between pages is a turn silently missing.",
    "metadata_round_trip": "Required: the manifest travels as user metadata.",
    "ranged_get": "Required (explicit `bytes=a-b` ranges only: the store never sends suffix "
    "ranges, which s3rver answers wrongly).",
    "conditional_multipart_complete": "Used when present: turns past `max_turn_buffer_bytes` "
    "stream as multipart uploads; where completion ignores `If-None-Match` the store does "
    "not stream (`UnsafeEndpointError`, FORMAT.md §3.1).",
    "delete_objects": "Required by `clear`/`purge`/compaction; batches are capped at 1000 "
    "keys by the library (moto accepts more, S3 does not).",
    "checksum_sha256": "Required: PUTs and parts carry `x-amz-checksum-sha256`.",
    "wrong_checksum_rejected": "Used when present; the store verifies every object it reads "
    "against its manifest's SHA-256 anyway.",
}
START, END = "<!-- doctor-table:start -->", "<!-- doctor-table:end -->"


@contextlib.contextmanager
def running(name: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Start one server: ``(endpoint_url, credentials)``."""
    if name == "moto":
        from s3_eventstore.demo.embedded import EmbeddedS3Server

        with EmbeddedS3Server() as moto:
            yield moto.endpoint_url, dict(CREDENTIALS)
    elif name == "seaweedfs":
        from tests.seaweedfs_fixture import SeaweedFS

        with SeaweedFS() as seaweedfs:
            yield seaweedfs.endpoint_url, dict(CREDENTIALS)
    elif name == "radosgw":
        from tests.radosgw_fixture import Radosgw

        with Radosgw() as radosgw:
            yield radosgw.endpoint_url, dict(CREDENTIALS)
    elif name == "s3rver":
        from tests.s3rver_fixture import S3RVER_CREDENTIALS, start_s3rver
        from tests.seaweedfs_fixture import stop_process

        with tempfile.TemporaryDirectory(prefix="s3es-s3rver-") as root:
            s3rver, process = start_s3rver(Path(root))
            try:
                yield s3rver.endpoint_url, dict(S3RVER_CREDENTIALS)
            finally:
                stop_process(process)
    else:
        raise ValueError(f"unknown server {name!r}; one of {SERVERS}")


def doctor_json(endpoint_url: str, credentials: dict[str, str], bucket: str) -> dict[str, Any]:
    """Create ``bucket`` and run ``s3-eventstore doctor --json`` on it (a subprocess, as a
    user would)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint_url, **credentials).create_bucket(Bucket=bucket)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
        "AWS_REGION": credentials["region_name"],
    }
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3_eventstore",
            "doctor",
            "--json",
            "--url",
            f"s3://{bucket}/archive",
            "--endpoint-url",
            endpoint_url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"doctor printed nothing (exit {done.returncode}): {done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["exit_code"] = done.returncode
    return report


def cell(check: dict[str, Any]) -> str:
    return "yes" if check["ok"] else "**no**"


def table(reports: dict[str, dict[str, Any]]) -> str:
    """The Markdown table: one row per check, one column per server."""
    names: list[str] = []
    required: dict[str, bool] = {}
    for report in reports.values():
        for check in report["checks"]:
            if check["name"] not in names:
                names.append(check["name"])
            required[check["name"]] = bool(check.get("required", True))
    servers = list(reports)
    lines = [
        "| check | store | "
        + " | ".join(TITLES[s] for s in servers)
        + " | what the library does |",
        "|---|---|" + "---|" * len(servers) + "---|",
    ]
    for name in names:
        cells = []
        for server in servers:
            found = [c for c in reports[server]["checks"] if c["name"] == name]
            cells.append(cell(found[0]) if found else "n/a")
        kind = "requires" if required[name] else "advisory"
        lines.append(
            f"| `{name}` | {kind} | " + " | ".join(cells) + f" | {LIBRARY_DOES.get(name, '')} |"
        )
    lines.append(
        "| doctor's exit code | | "
        + " | ".join(str(reports[s]["exit_code"]) for s in servers)
        + " | 0: nothing required is missing; 5: something is |"
    )
    return "\n".join(lines)


def parse_readme_table(text: str) -> dict[str, dict[str, str]]:
    """README's table as ``{server title: {check name: cell}}``."""
    block = text[text.index(START) + len(START) : text.index(END)]
    rows = [line for line in block.strip().splitlines() if line.startswith("|")]
    header = [part.strip() for part in rows[0].strip("|").split("|")]
    columns: dict[str, dict[str, str]] = {title: {} for title in header[2:-1]}
    for row in rows[2:]:
        parts = [part.strip() for part in row.strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", parts[0])
        name = match.group(1) if match else parts[0]
        for title, value in zip(header[2:-1], parts[2:-1], strict=True):
            columns[title][name] = value
    return columns


def column(report: dict[str, Any]) -> dict[str, str]:
    """One server's column as README shows it."""
    values = {check["name"]: cell(check) for check in report["checks"]}
    values["doctor's exit code"] = str(report["exit_code"])
    return values


def main(argv: list[str]) -> None:
    wanted = [name for name in SERVERS if name in (argv or ["moto", "seaweedfs", "s3rver"])]
    reports = {}
    for name in wanted:
        with running(name) as (endpoint_url, credentials):
            reports[name] = doctor_json(endpoint_url, credentials, "doctor-table")
    print(START)
    print(table(reports))
    print(END)


if __name__ == "__main__":
    main(sys.argv[1:])
