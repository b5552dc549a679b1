"""The contract suite against the in-memory reference implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3_eventstore import InMemoryEventStore
from s3_eventstore.testing import EventStoreConformance

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s3_eventstore.store import EventStore


class TestInMemoryConformance(EventStoreConformance):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()

    @pytest.fixture
    def reopen(self, store: InMemoryEventStore) -> Callable[[], Awaitable[EventStore]]:
        async def fresh() -> EventStore:
            return store.reopen()

        return fresh
