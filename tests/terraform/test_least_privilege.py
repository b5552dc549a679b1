"""Least privilege, both ways: each IAM role grants exactly the S3 actions the library issues.

Each role's workload drives every public S3EventStore operation that role performs,
over HTTP against moto, and records the S3 operations with a botocore hook of its own.
The recorded operations, mapped to IAM actions, must equal the role's action list in
``terraform/iam.tf``: a new S3 call in the library fails here until the policy follows,
and a policy action the library no longer needs fails too. A static scan of the package
makes sure no client call escapes the mapping.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore, TurnAlreadyFinishedError
from s3_eventstore.testing.conformance import make_event

sys.path.insert(0, str(Path(__file__).parent))
from policy_actions import declared_s3_actions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

PACKAGE = Path(__file__).resolve().parents[2] / "s3_eventstore"
MiB = 1 << 20

OPERATION_ACTIONS: dict[str, str] = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
    "ListObjectVersions": "s3:ListBucketVersions",
}
"""How IAM authorises each S3 operation the library calls (AWS's service authorisation
reference). A VersionId on a GET or a delete needs the *Version action instead."""


def iam_actions(operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions one recorded call needs."""
    if operation in ("DeleteObject", "DeleteObjects"):
        objects = params.get("Delete", {}).get("Objects", [params])
        return {
            "s3:DeleteObjectVersion" if "VersionId" in obj else "s3:DeleteObject" for obj in objects
        }
    if operation in ("GetObject", "HeadObject") and "VersionId" in params:
        return {"s3:GetObjectVersion"}
    return {OPERATION_ACTIONS[operation]}


class Recorder:
    """Records (operation, params) of every call a client makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def attach(self, store: S3EventStore) -> None:
        # before-parameter-build sees the API parameters (VersionId...), before-call
        # only the serialised HTTP request.
        store.client.meta.events.register("before-parameter-build.s3", self._on_call)

    def _on_call(self, model: Any = None, params: Any = None, **_: Any) -> None:
        self.calls.append((model.name, dict(params or {})))

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for op, _ in self.calls:
            counts[op] = counts.get(op, 0) + 1
        return f"operations recorded: {counts}"

    def actions(self) -> set[str]:
        return {action for op, params in self.calls for action in iam_actions(op, params)}


@pytest.fixture
def versioned_bucket(backdoor: Any, bucket: str) -> str:
    backdoor.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


async def open_store(server: EmbeddedS3Server, bucket: str, recorder: Recorder) -> S3EventStore:
    # terraform/ provisions an AWS bucket, and the store never probes AWS endpoints
    # (s3/probe.is_aws): the roles are measured as the store behaves there. On other
    # servers the probe writes and deletes only under the prefix's _doctor/ folder
    # (tests/test_probe.py), which these roles do not cover and need not.
    store = S3EventStore(
        bucket,
        "archive",
        endpoint_url=server.endpoint_url,
        session=server.session(),
        check_endpoint=False,
        max_turn_buffer_bytes=5 * MiB,
        multipart_part_bytes=5 * MiB,
    )
    await store.open()
    recorder.attach(store)
    return store


@pytest.fixture
async def seeded(s3_server: EmbeddedS3Server, versioned_bucket: str) -> AsyncIterator[str]:
    """A bucket holding finished turns, one of them streamed (multipart + trailer)."""
    store = await open_store(s3_server, versioned_bucket, Recorder())
    try:
        for turn in range(3):
            await store.append("t", turn, make_event(turn))
            await store.finish_turn("t", turn)
        for event in big_turn():
            await store.append("big", 1, event)
        await store.finish_turn("big", 1)
    finally:
        await store.close()
    return versioned_bucket


def big_turn() -> list[AgentEventEnvelope]:
    """~12 MiB of poorly compressible events: streamed, with a part uploaded early."""
    noise = random.Random(7)
    return [make_event(i, delta=noise.randbytes(2000).hex()) for i in range(3000)]


async def reader_workload(store: S3EventStore) -> None:
    assert await store.get_turn("t", 1) is not None
    assert await store.get_turn("t", 99) is None
    assert len(await store.get_turns("t")) == 3
    assert len(await store.get_events("big")) == 3000
    assert await store.event_count("t") == 3
    assert await store.event_count("big") == 3000
    assert len(await store.get_events_since("t", 2)) == 1
    assert (await store.verify("t")).ok
    assert (await store.verify()).ok


async def writer_workload(store: S3EventStore, other: S3EventStore) -> None:
    await reader_workload(store)
    await store.append("w", 1, make_event())
    await store.finish_turn("w", 1)
    await other.append("w", 2, make_event(1))
    await store.append("w", 2, make_event(2))
    await other.finish_turn("w", 2)
    with pytest.raises(TurnAlreadyFinishedError):
        await store.finish_turn("w", 2)  # the 412 path: HeadObject of the winner
    for event in big_turn():
        await store.append("w", 3, event)
    await store.finish_turn("w", 3)  # streamed: multipart upload
    for event in big_turn():
        await store.append("w", 4, event)
    await store.discard_turn("w", 4)  # aborts its upload


async def admin_workload(store: S3EventStore) -> None:
    await reader_workload(store)
    await store.append("t", 7, make_event())
    await store.finish_turn("t", 7)
    for event in big_turn():
        await store.append("a", 1, event)
    await store.clear("a")  # aborts the streamed upload, nothing to delete yet
    await store.clear("t")
    await store.purge("t")
    await store.purge("big")


async def test_reader_policy_is_exactly_what_reads_issue(
    s3_server: EmbeddedS3Server, seeded: str
) -> None:
    recorder = Recorder()
    store = await open_store(s3_server, seeded, recorder)
    try:
        await reader_workload(store)
    finally:
        await store.close()
    assert recorder.actions() == declared_s3_actions()["reader"], recorder.summary()


async def test_writer_policy_is_exactly_what_workers_issue(
    s3_server: EmbeddedS3Server, seeded: str
) -> None:
    recorder = Recorder()
    store = await open_store(s3_server, seeded, recorder)
    other = await open_store(s3_server, seeded, Recorder())
    try:
        await writer_workload(store, other)
    finally:
        await store.close()
        await other.close()
    assert recorder.actions() == declared_s3_actions()["writer"], recorder.summary()


async def test_admin_policy_is_exactly_what_admins_issue(
    s3_server: EmbeddedS3Server, seeded: str
) -> None:
    recorder = Recorder()
    store = await open_store(s3_server, seeded, recorder)
    try:
        await admin_workload(store)
    finally:
        await store.close()
    assert recorder.actions() == declared_s3_actions()["admin"], recorder.summary()


def test_every_client_call_in_the_package_is_mapped() -> None:
    """A new S3 call anywhere in the library must be added to the mapping (and a role)."""
    called = set()
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r"client\.([a-z0-9_]+)\(", path.read_text(encoding="utf-8")):
            called.add("".join(part.title() for part in name.split("_")).replace("V2", "V2"))
    # Bucket set-up on the embedded/local server (demo/): never sent to an archive.
    setup = {"createbucket", "headbucket", "listbuckets"}
    known = {op.lower() for op in OPERATION_ACTIONS} | setup
    unmapped = {op for op in called if op.lower() not in known}
    assert not unmapped, f"S3 calls without an IAM mapping: {sorted(unmapped)}"
