"""The contract suite against the in-memory reference implementation."""

from __future__ import annotations

import pytest

from s3_eventstore import InMemoryEventStore
from s3_eventstore.testing import EventStoreConformance


class TestInMemoryConformance(EventStoreConformance):
    @pytest.fixture
    def store(self) -> InMemoryEventStore:
        return InMemoryEventStore()
