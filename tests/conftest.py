"""Shared fixtures: one moto S3 server on 127.0.0.1 per test session, a fresh bucket per test.

Tests talk HTTP to the server like any S3 client would. ``backdoor`` is a plain
synchronous boto3 client for reading and planting objects behind the store's back.

Slow tests (``@pytest.mark.slow``, and every test of :data:`SLOW_MODULES`) are left out of
a plain ``python -m pytest``: ``-m slow`` runs only them, ``S3ES_SLOW=1`` runs everything,
and any ``-m`` expression is taken as given.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS, EmbeddedS3Server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

_bucket_numbers = itertools.count()

SLOW_ENV = "S3ES_SLOW"
SLOW_MODULES = (
    "tests/terraform/test_terraform_cli.py",
    "tests/terraform/test_terraform_checkov.py",
    "tests/test_large_turns.py",
)
"""Whole modules that are slow: terraform and checkov runs, multi-megabyte turns."""


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.markexpr and os.environ.get(SLOW_ENV, "") in ("", "0"):
        config.option.markexpr = "not slow"


@pytest.hookimpl(tryfirst=True)  # before pytest deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.path.as_posix()
        if any(path.endswith(module) for module in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


def pytest_report_header(config: pytest.Config) -> str:
    if config.option.markexpr == "not slow" and os.environ.get(SLOW_ENV, "") in ("", "0"):
        return f"slow tests left out: run them with -m slow, or everything with {SLOW_ENV}=1"
    return f"marker selection: {config.option.markexpr or '(none: every test)'}"


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
