"""The contract suite against the wrappers: they must be invisible to a caller.

ObservedEventStore (telemetry) and LoopBoundEventStore (the sync facade's async view)
both wrap the in-memory reference store here; the S3 conformance suite covers the store
they would wrap in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3_eventstore import AgentEventEnvelope, InMemoryEventStore, StoredTurnEvents
from s3_eventstore.sync import LoopBoundEventStore
from s3_eventstore.telemetry import ObservedEventStore
from s3_eventstore.testing import EventStoreConformance
from tests.reopen_fixtures import reopening

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore


class TestObservedConformance(EventStoreConformance):
    @pytest.fixture
    def store(self) -> ObservedEventStore:
        return ObservedEventStore(InMemoryEventStore(), trace_appends=True)

    @pytest.fixture
    def reopen(self, store: ObservedEventStore) -> Callable[[], Awaitable[EventStore]]:
        """Another wrapper over a fresh store on the same journal (another process)."""
        inner = store.inner
        assert isinstance(inner, InMemoryEventStore)

        async def fresh() -> EventStore:
            return ObservedEventStore(inner.reopen(), trace_appends=True)

        return fresh


class TestLoopBoundConformance(EventStoreConformance):
    """The kit closes it with ``await aclose(flush=...)``: its ``close`` blocks."""

    @pytest.fixture
    def store(self) -> Iterator[LoopBoundEventStore]:
        shared = LoopBoundEventStore(InMemoryEventStore())
        yield shared
        shared.close()

    @pytest.fixture
    def reopen(self, store: LoopBoundEventStore) -> Iterator[Callable[[], Awaitable[EventStore]]]:
        """Another wrapper, on its own loop thread, over a fresh store on the same journal."""
        inner = store.store
        assert isinstance(inner, InMemoryEventStore)
        opened: list[LoopBoundEventStore] = []

        async def fresh() -> EventStore:
            opened.append(LoopBoundEventStore(inner.reopen()))
            return opened[-1]

        yield fresh
        for wrapper in opened:
            wrapper.close()


async def test_flush_through_the_wrappers_reaches_the_s3_store(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """The wrappers forward ``flush``: the ABC's default (do nothing) would silently keep
    an S3 store's open turn in memory only, and a crash would lose it."""
    async with reopening(s3_server, bucket) as fresh:
        for wrap in (ObservedEventStore, LoopBoundEventStore):
            thread = f"t-{wrap.__name__}"
            inner = await fresh()
            wrapper = wrap(inner)
            event = AgentEventEnvelope.create("text_delta", {"delta": "kept"}, sequence=0)
            await wrapper.append(thread, 1, event)
            await wrapper.flush()
            reader = await fresh()
            assert await reader.get_turn(thread, 1) == StoredTurnEvents(1, (event,), False)
            if isinstance(wrapper, LoopBoundEventStore):
                wrapper.close()
