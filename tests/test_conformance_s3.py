"""The contract suite, unchanged, against S3EventStore over HTTP to a moto server."""

from __future__ import annotations

import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.testing import EventStoreConformance


class TestS3Conformance(EventStoreConformance):
    @pytest.fixture
    def store(self, s3_store: S3EventStore) -> S3EventStore:
        return s3_store
