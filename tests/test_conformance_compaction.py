"""The contract suite, unchanged, against S3EventStore while its threads are compacted.

Compaction runs in a second store (another process, as in production), so the store
under test learns about segments only from what it reads. The fast run covers every
thread compacted after each finish_turn (many small segments) and, before each read, a
compaction killed at each of its steps in turn: after the segment PUT (turns stored
twice), halfway through the stubs, and not at all. The slow run also holds each of
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
from tests.reopen_fixtures import reopening

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore


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


@pytest.fixture
async def reopen_s3(
    s3_server: EmbeddedS3Server, bucket: str
) -> AsyncIterator[Callable[[], Awaitable[EventStore]]]:
    async with reopening(s3_server, bucket) as fresh:
        yield fresh


class _Reopening(EventStoreConformance):
    """Fresh stores see the thread in the same maintenance state as the store under test."""

    @pytest.fixture
    def reopen(
        self, reopen_s3: Callable[[], Awaitable[EventStore]], store: HookedEventStore
    ) -> Callable[[], Awaitable[EventStore]]:
        async def fresh() -> EventStore:
            return HookedEventStore(
                await reopen_s3(),
                after_finish=store.after_finish,
                before_read=store.before_read,
            )

        return fresh


class TestS3CompactedAfterEveryFinish(_Reopening):
    @pytest.fixture
    def store(self, s3_store: S3EventStore, compactor: S3EventStore) -> HookedEventStore:
        return HookedEventStore(s3_store, after_finish=compacting(compactor))


class TestS3CompactionKilledAtEachStep(_Reopening):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        stub = compaction._stub
        steps = itertools.cycle(["after-put", "mid-stub", "never"])

        async def die_somewhere(store: S3EventStore, thread_id: str, targets: list[Any]) -> Any:
            step = next(steps) if targets else "never"
            if step == "after-put":
                raise Killed
            if step == "mid-stub" and len(targets) > 1:
                await stub(store, thread_id, targets[: len(targets) // 2])
                raise Killed
            return await stub(store, thread_id, targets)

        monkeypatch.setattr(compaction, "_stub", die_somewhere)
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactedBeforeEveryRead(_Reopening):
    @pytest.fixture
    def store(self, s3_store: S3EventStore, compactor: S3EventStore) -> HookedEventStore:
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactionKilledAfterSegmentPut(_Reopening):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        async def die(store: S3EventStore, thread_id: str, targets: list[Any]) -> int:
            if targets:
                raise Killed
            return 0

        monkeypatch.setattr(compaction, "_stub", die)
        return HookedEventStore(s3_store, before_read=compacting(compactor))


@pytest.mark.slow
class TestS3CompactionKilledMidStub(_Reopening):
    @pytest.fixture
    def store(
        self, s3_store: S3EventStore, compactor: S3EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> HookedEventStore:
        stub = compaction._stub

        async def die_halfway(store: S3EventStore, thread_id: str, targets: list[Any]) -> Any:
            if len(targets) > 1:
                await stub(store, thread_id, targets[: len(targets) // 2])
                raise Killed
            return await stub(store, thread_id, targets)

        monkeypatch.setattr(compaction, "_stub", die_halfway)
        return HookedEventStore(s3_store, before_read=compacting(compactor))
