"""Versioned and Object Lock buckets: ``clear`` hides a thread, ``purge`` erases it."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, ObjectLockedError, S3EventStore, StorageError
from s3_eventstore.s3.purge import PurgeReport

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

_names = itertools.count()


def event(sequence: int) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(
        "message",
        {"text": "v"},
        sequence=sequence,
        event_id=f"00000000-0000-4000-8000-{sequence:012d}",
        timestamp="2026-01-01T00:00:00Z",
    )


def versions(backdoor: Any, bucket: str) -> list[tuple[str, bool]]:
    """(key, is delete marker) for every version in the bucket, behind the store's back."""
    found: list[tuple[str, bool]] = []
    for page in backdoor.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found.extend((v["Key"], False) for v in page.get("Versions", []))
        found.extend((m["Key"], True) for m in page.get("DeleteMarkers", []))
    return sorted(found)


def plant(backdoor: Any, bucket: str, key: str) -> None:
    backdoor.put_object(Bucket=bucket, Key=key, Body=b"o")


@pytest.fixture
def versioned_bucket(backdoor: Any) -> str:
    name = f"versioned-{next(_names)}"
    backdoor.create_bucket(Bucket=name)
    backdoor.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def locked_bucket(backdoor: Any) -> str:
    name = f"locked-{next(_names)}"
    backdoor.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    backdoor.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    return name


def new_store(server: EmbeddedS3Server, bucket: str) -> S3EventStore:
    return S3EventStore(bucket, "p", endpoint_url=server.endpoint_url, session=server.session())


async def write_turns(store: S3EventStore, thread_id: str, turns: int) -> None:
    for turn in range(turns):
        await store.append(thread_id, turn, event(turn))
        await store.finish_turn(thread_id, turn)


async def test_clear_hides_and_purge_erases(
    s3_server: EmbeddedS3Server, versioned_bucket: str, backdoor: Any
) -> None:
    async with new_store(s3_server, versioned_bucket) as store:
        await write_turns(store, "t", 3)
        await write_turns(store, "other", 1)
        await store.clear("t")
        assert await store.get_turns("t") == []
        t_keys = [store.layout.turn_key("t", turn) for turn in range(3)]
        other = store.layout.turn_key("other", 0)
        # clear left the data in noncurrent versions, hidden by delete markers.
        assert versions(backdoor, versioned_bucket) == sorted(
            [(other, False)] + [(k, False) for k in t_keys] + [(k, True) for k in t_keys]
        )
        await store.append("t", 9, event(9))  # an open turn is dropped like by clear
        report = await store.purge("t")
        assert report == PurgeReport(versions=3, delete_markers=3)
        assert versions(backdoor, versioned_bucket) == [(other, False)]
        assert store.open_turns() == []
        assert await store.purge("t") == PurgeReport(versions=0, delete_markers=0)


@pytest.mark.slow  # over 1000 versions
async def test_purge_pages_through_more_than_1000_versions(
    s3_server: EmbeddedS3Server, versioned_bucket: str, backdoor: Any
) -> None:
    async with new_store(s3_server, versioned_bucket) as store:
        await write_turns(store, "t", 1)
        folder = store.layout.thread_folder("t")
        # Plant 1004 more objects in the thread's folder behind the store's back (distinct
        # keys: moto loses versions of one key written concurrently).
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(lambda n: plant(backdoor, versioned_bucket, f"{folder}x{n}"), range(1004))
            )
        store.requests.reset()
        report = await store.purge("t")
        assert report == PurgeReport(versions=1005, delete_markers=0)
        assert store.requests.calls["ListObjectVersions"] == 2  # 1000 a page
        assert store.requests.calls["DeleteObjects"] == 2  # 1000 a request
    assert versions(backdoor, versioned_bucket) == []


async def test_purge_of_locked_versions_says_what_was_kept(
    s3_server: EmbeddedS3Server, locked_bucket: str, backdoor: Any
) -> None:
    async with new_store(s3_server, locked_bucket) as store:
        await write_turns(store, "t", 2)
        keys = [store.layout.turn_key("t", turn) for turn in range(2)]
        # clear only adds delete markers, which Object Lock allows (as on AWS S3).
        await store.clear("t")
        assert await store.get_turns("t") == []
        with pytest.raises(ObjectLockedError) as info:
            await store.purge("t")
        err = info.value
        assert str(err) == (
            "purge could not delete 2 version(s) (AccessDenied); deleted 2 - Object Lock "
            "retention or a legal hold protects them"
        )
        assert isinstance(err, StorageError)
        assert sorted(ref.split("?versionId=")[0] for ref in err.deleted) == keys
        assert sorted(ref.split("?versionId=")[0] for ref in err.not_deleted) == keys
        # The delete markers went, so the locked data is visible again: nothing lost.
        assert versions(backdoor, locked_bucket) == [(k, False) for k in keys]
        turns = await store.get_turns("t")
        assert [turn.events for turn in turns] == [(event(0),), (event(1),)]
