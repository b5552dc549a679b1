"""A second, independent S3 server for the doctor tests: s3rver (npm), on 127.0.0.1.

s3rver ignores conditional writes, so it is the unsafe endpoint the store must refuse.
Installed with npm into a temporary directory once per session. Without npm (or when
the install fails) the tests that need it are skipped with the reason, except under
``CI=true`` where a missing server is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.seaweedfs_fixture import ServerUnavailableError, die_with_parent, stop_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

S3RVER_VERSION = "3"
S3RVER_CREDENTIALS = {
    "aws_access_key_id": "S3RVER",
    "aws_secret_access_key": "S3RVER",
    "region_name": "us-east-1",
}
"""s3rver's fixed default credentials."""
_LISTENING = re.compile(rb"listening on ([0-9.]+):(\d+)")


@dataclass(frozen=True, slots=True)
class S3rver:
    """A running s3rver."""

    endpoint_url: str
    name = "s3rver"
    atomic_conditional_writes = False
    """It ignores ``If-None-Match`` altogether."""

    def session(self) -> Any:
        """An ``aioboto3.Session`` with s3rver's credentials."""
        import aioboto3

        return aioboto3.Session(**S3RVER_CREDENTIALS)

    def client(self) -> Any:
        """A synchronous boto3 client (the backdoor)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, **S3RVER_CREDENTIALS)


def node_environment(node: str) -> dict[str, str]:
    """The environment for s3rver: on Node 17+ (OpenSSL 3) with the legacy provider, since
    s3rver encrypts its ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only
    has there: without it every truncated listing answers 500."""
    env = dict(os.environ)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", version.stdout)
    if match and int(match.group(1)) >= 17:
        flags = env.get("NODE_OPTIONS", "").split()
        if "--openssl-legacy-provider" not in flags:
            env["NODE_OPTIONS"] = " ".join([*flags, "--openssl-legacy-provider"])
    return env


def start_s3rver(root: Path) -> tuple[S3rver, subprocess.Popen[bytes]]:
    """Install s3rver under ``root`` with npm and start it on a free 127.0.0.1 port.

    Raises:
        ServerUnavailableError: no npm/node, the install failed, or it did not listen.
    """
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        raise ServerUnavailableError("npm and node are not on PATH")
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", f"s3rver@{S3RVER_VERSION}"],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        output = getattr(err, "stderr", b"") or b""
        raise ServerUnavailableError(
            f"npm install s3rver@{S3RVER_VERSION} failed: {output[-500:]!r}"
        ) from err
    data = root / "data"
    data.mkdir(exist_ok=True)
    script = root / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    process = subprocess.Popen(
        [node, str(script), "-d", str(data), "-a", "127.0.0.1", "-p", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=node_environment(node),
        preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, see there
    )
    assert process.stdout is not None
    match = None
    for line in process.stdout:  # blocks until s3rver prints where it listens
        match = _LISTENING.search(line)
        if match:
            break
    if match is None:
        raise ServerUnavailableError(f"s3rver exited with {process.wait()} before listening")
    # s3rver logs every request: keep reading, or a full pipe would stall it.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return S3rver(f"http://127.0.0.1:{int(match.group(2))}"), process


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3rver]:
    """s3rver for the session; skipped with the reason when it cannot be had, except under
    ``CI=true`` where that is a failure."""
    try:
        server, process = start_s3rver(tmp_path_factory.mktemp("s3rver"))
    except ServerUnavailableError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"s3rver is required in CI: {err}")
        pytest.skip(f"s3rver unavailable: {err}")
    try:
        yield server
    finally:
        stop_process(process)
