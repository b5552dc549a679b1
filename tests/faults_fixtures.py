"""Helpers for the fault, race, corruption and verify tests: a fault proxy per test,
stores pointed at it, and a backdoor reader that decodes turn objects without the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

import zstandard

from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY
from s3_eventstore.testing.faultproxy import FaultProxy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

PREFIX = "archive/v1"


@contextlib.contextmanager
def running_proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    """A quiet fault proxy in front of the session's moto server (test modules wrap it in
    a ``proxy`` fixture; conftest.py belongs to everyone)."""
    with FaultProxy(s3_server.endpoint_url, seed=20261124, delay_seconds=3.0) as fault_proxy:
        yield fault_proxy


@contextlib.asynccontextmanager
async def store_via(
    endpoint_url: str, s3_server: EmbeddedS3Server, bucket: str, **options: Any
) -> AsyncIterator[S3EventStore]:
    """An S3EventStore with its own client talking to ``endpoint_url``.

    The endpoint probe is off unless asked for: a proxy is a new endpoint per test, and
    the probe's requests would take the faults planned for the store's own requests
    (the probe has its own tests, in test_hostile_servers.py)."""
    options.setdefault("check_endpoint", False)
    options.setdefault("max_attempts", 3)
    options.setdefault("read_timeout", 5.0)
    options.setdefault("connect_timeout", 2.0)
    async with S3EventStore(
        bucket, PREFIX, endpoint_url=endpoint_url, session=s3_server.session(), **options
    ) as store:
        yield store


def read_behind(backdoor: Any, bucket: str, key: str) -> list[AgentEventEnvelope]:
    """Decode a turn object with boto3 + zstandard + json, checking its manifest checksum."""
    response = backdoor.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    manifest = json.loads(response["Metadata"][MANIFEST_METADATA_KEY])
    payload = zstandard.ZstdDecompressor().decompress(body)
    assert hashlib.sha256(payload).hexdigest() == manifest["sha256"], key
    lines = payload.split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == manifest["events"], key
    return [AgentEventEnvelope.from_json(line) for line in lines]
