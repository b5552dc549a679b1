"""The contract suite against the wrappers: they must be invisible to a caller.

ObservedEventStore (telemetry) and LoopBoundEventStore (the sync facade's async view)
both wrap the in-memory reference store here; the S3 conformance suite covers the store
they would wrap in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3_eventstore import InMemoryEventStore
from s3_eventstore.sync import LoopBoundEventStore
from s3_eventstore.telemetry import ObservedEventStore
from s3_eventstore.testing import EventStoreConformance

if TYPE_CHECKING:
    from collections.abc import Iterator


class TestObservedConformance(EventStoreConformance):
    @pytest.fixture
    def store(self) -> ObservedEventStore:
        return ObservedEventStore(InMemoryEventStore(), trace_appends=True)


class TestLoopBoundConformance(EventStoreConformance):
    @pytest.fixture
    def store(self) -> Iterator[LoopBoundEventStore]:
        shared = LoopBoundEventStore(InMemoryEventStore())
        yield shared
        shared.close()
