"""The contract suite, unchanged, against S3EventStore while its threads are compacted.

Compaction runs in a second store (another process, as in production), so the store
under test learns about segments only from what it reads. The fast run covers every
thread compacted after each finish_turn (many small segments) and, before each read, a
compaction killed at each of its steps in turn: after the segment PUT (turns stored
twice), halfway through the deletes, and not at all. The slow run also holds each of
those states alone for the whole suite.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.s3 import compaction
from s3_eventstore.testing import EventStoreConformance
from s3_eventstore.testing.conformance import HookedEventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore.demo.embedded import EmbeddedS3Server


class Killed(Exception):
    """The compaction process died at this point."""


@pytest.fixture
async def compactor(s3_server: EmbeddedS3Server, bucket: str) -> AsyncIterator[S3EventStore]:
    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        yield store


def compacting(compactor: S3EventStore) -> Callable[[str], Awaitable[None]]:
    async def run(thread_id: str) -> None:
        with contextlib.suppress(Killed):
            await compaction.compact(compactor, thread_id, min_turns=1)

    return run


class TestS3CompactedAfterEveryFinish(EventStoreConformance):
    @pytest.fixture
    def store(self, s3_store: S3EventStore, compactor: S3EventStore) -> HookedEventStore:
        return HookedEventStore(s3_store, after_finish=compacting(compactor))


class TestS3CompactionKilledAtEachStep(EventStoreConformance):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        delete = compaction._delete
        steps = itertools.cycle(["after-put", "mid-delete", "never"])

        async def die_somewhere(store: S3EventStore, keys: list[str]) -> Any:
            step = next(steps) if keys else "never"
            if step == "after-put":
                raise Killed
            if step == "mid-delete" and len(keys) > 1:
                await delete(store, keys[: len(keys) // 2])
                raise Killed
            return await delete(store, keys)

        monkeypatch.setattr(compaction, "_delete", die_somewhere)
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactedBeforeEveryRead(EventStoreConformance):
    @pytest.fixture
    def store(self, s3_store: S3EventStore, compactor: S3EventStore) -> HookedEventStore:
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactionKilledAfterSegmentPut(EventStoreConformance):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        async def die(store: S3EventStore, keys: list[str]) -> int:
            if keys:
                raise Killed
            return 0

        monkeypatch.setattr(compaction, "_delete", die)
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactionKilledMidDelete(EventStoreConformance):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        delete = compaction._delete

        async def die_halfway(store: S3EventStore, keys: list[str]) -> Any:
            if len(keys) > 1:
                await delete(store, keys[: len(keys) // 2])
                raise Killed
            return await delete(store, keys)

        monkeypatch.setattr(compaction, "_delete", die_halfway)
        return HookedEventStore(s3_store, before_read=compacting(compactor))
