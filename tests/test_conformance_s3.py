"""The contract suite, unchanged, against S3EventStore over HTTP to a moto server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3_eventstore.testing import EventStoreConformance
from tests.reopen_fixtures import reopening

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore import S3EventStore
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore


@pytest.fixture
async def reopen_s3(
    s3_server: EmbeddedS3Server, bucket: str
) -> AsyncIterator[Callable[[], Awaitable[EventStore]]]:
    async with reopening(s3_server, bucket) as fresh:
        yield fresh


class TestS3Conformance(EventStoreConformance):
    @pytest.fixture
    def store(self, s3_store: S3EventStore) -> S3EventStore:
        return s3_store

    @pytest.fixture
    def reopen(
        self, reopen_s3: Callable[[], Awaitable[EventStore]]
    ) -> Callable[[], Awaitable[EventStore]]:
        return reopen_s3
