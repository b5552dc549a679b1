"""Shared fixtures: one moto S3 server on 127.0.0.1 per test session, a fresh bucket per test.

Tests talk HTTP to the server like any S3 client would. ``backdoor`` is a plain
synchronous boto3 client for reading and planting objects behind the store's back.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS, EmbeddedS3Server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

_bucket_numbers = itertools.count()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[EmbeddedS3Server]:
    with EmbeddedS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def backdoor(s3_server: EmbeddedS3Server) -> Any:
    return boto3.client("s3", endpoint_url=s3_server.endpoint_url, **CREDENTIALS)


@pytest.fixture
def bucket(backdoor: Any) -> str:
    name = f"test-bucket-{next(_bucket_numbers)}"
    backdoor.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3_store(s3_server: EmbeddedS3Server, bucket: str) -> AsyncIterator[S3EventStore]:
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=s3_server.endpoint_url,
        session=s3_server.session(),
    ) as store:
        yield store


def all_keys(backdoor: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every key in the bucket, read behind the store's back."""
    keys: list[str] = []
    for page in backdoor.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
