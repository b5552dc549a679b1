"""The contract suite, unchanged, against S3EventStore over HTTP to a moto server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from s3_eventstore.testing import EventStoreConformance

if TYPE_CHECKING:
    from s3_eventstore import S3EventStore


class TestS3Conformance(EventStoreConformance):
    @pytest.fixture
    def store(self, s3_store: S3EventStore) -> S3EventStore:
        return s3_store
