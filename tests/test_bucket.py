"""The bucket seam over HTTP (moto): preconditions as values, named results, the prefix fence.

Writes are checked with the ``backdoor`` client, never only by reading back through the
seam under test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import ConfigurationError, StorageError
from s3_eventstore.errors import PreconditionFailedError
from s3_eventstore.s3.bucket import Bucket
from s3_eventstore.s3.config import ClientSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

PREFIX = "owned/"


@pytest.fixture
async def seam(s3_server: EmbeddedS3Server, bucket: str) -> AsyncIterator[Bucket]:
    objects = Bucket(
        bucket,
        owned_prefix=PREFIX,
        settings=ClientSettings(endpoint_url=s3_server.endpoint_url, max_attempts=1),
        session=s3_server.session(),
        operation_timeout=30.0,
    )
    try:
        yield objects
    finally:
        await objects.close()


def body_of(backdoor: Any, bucket: str, key: str) -> bytes:
    data: bytes = backdoor.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


async def test_put_create_writes_once_and_refuses_a_second_time(
    seam: Bucket, backdoor: Any, bucket: str
) -> None:
    etag = await seam.put(f"{PREFIX}a", b"first", mode="create", metadata={"k": "v"})
    head = backdoor.head_object(Bucket=bucket, Key=f"{PREFIX}a")
    assert head["ETag"] == etag
    assert head["Metadata"] == {"k": "v"}
    with pytest.raises(PreconditionFailedError) as info:
        await seam.put(f"{PREFIX}a", b"second", mode="create")
    assert isinstance(info.value, StorageError)
    assert (info.value.operation, info.value.code) == ("PutObject", "PreconditionFailed")
    assert body_of(backdoor, bucket, f"{PREFIX}a") == b"first"


async def test_put_overwrite_replaces(seam: Bucket, backdoor: Any, bucket: str) -> None:
    await seam.put(f"{PREFIX}a", b"first", mode="overwrite")
    await seam.put(f"{PREFIX}a", b"second", mode="overwrite")
    assert body_of(backdoor, bucket, f"{PREFIX}a") == b"second"


async def test_put_if_match_is_an_update_of_that_version_only(
    seam: Bucket, backdoor: Any, bucket: str
) -> None:
    first = await seam.put(f"{PREFIX}a", b"first")
    second = await seam.put(f"{PREFIX}a", b"second", if_match=first)
    assert second != first
    with pytest.raises(PreconditionFailedError):
        await seam.put(f"{PREFIX}a", b"lost update", if_match=first)
    assert body_of(backdoor, bucket, f"{PREFIX}a") == b"second"


async def test_conditional_delete(seam: Bucket, backdoor: Any, bucket: str) -> None:
    first = await seam.put(f"{PREFIX}a", b"first")
    await seam.put(f"{PREFIX}a", b"second", if_match=first)
    with pytest.raises(PreconditionFailedError):
        await seam.delete(f"{PREFIX}a", if_match=first)
    assert body_of(backdoor, bucket, f"{PREFIX}a") == b"second"
    current = backdoor.head_object(Bucket=bucket, Key=f"{PREFIX}a")["ETag"]
    await seam.delete(f"{PREFIX}a", if_match=current)
    assert backdoor.list_objects_v2(Bucket=bucket).get("Contents", []) == []


async def test_get_and_head_return_named_values_or_none(
    seam: Bucket, backdoor: Any, bucket: str
) -> None:
    backdoor.put_object(Bucket=bucket, Key="elsewhere/x", Body=b"0123456789", Metadata={"m": "1"})
    found = await seam.get("elsewhere/x")
    assert found is not None
    assert (found.body, found.metadata) == (b"0123456789", {"m": "1"})
    ranged = await seam.get("elsewhere/x", byte_range=(2, 5), if_match=found.etag)
    assert ranged is not None
    assert ranged.body == b"234"
    assert await seam.get("elsewhere/x", if_match='"not-the-etag"') is None
    assert await seam.get("elsewhere/missing") is None
    head = await seam.head("elsewhere/x")
    assert head is not None
    assert (head.etag, head.size, head.metadata) == (found.etag, 10, {"m": "1"})
    assert await seam.head("elsewhere/missing") is None


async def test_list_follows_pages_and_names_each_object(
    seam: Bucket, backdoor: Any, bucket: str
) -> None:
    for n in range(3):
        backdoor.put_object(Bucket=bucket, Key=f"{PREFIX}k{n}", Body=b"x" * n)
    listed = await seam.list_all(PREFIX)
    assert [(o.key, o.size) for o in listed] == [(f"{PREFIX}k{n}", n) for n in range(3)]
    assert all(o.etag and o.last_modified for o in listed)
    assert await seam.delete_keys([o.key for o in listed]) == 3
    assert await seam.list_all(PREFIX) == []


@pytest.mark.parametrize("key", ["outside", "own", "owned", "other/owned/x"])
async def test_nothing_is_written_or_deleted_outside_the_owned_prefix(
    seam: Bucket, backdoor: Any, bucket: str, key: str
) -> None:
    backdoor.put_object(Bucket=bucket, Key=key, Body=b"keep")
    with pytest.raises(ConfigurationError, match="outside"):
        await seam.put(key, b"x", mode="overwrite")
    with pytest.raises(ConfigurationError, match="outside"):
        await seam.delete(key)
    with pytest.raises(ConfigurationError, match="outside"):
        await seam.delete_keys([f"{PREFIX}fine", key])
    with pytest.raises(ConfigurationError, match="outside"):
        await seam.create_multipart(key, metadata={})
    assert body_of(backdoor, bucket, key) == b"keep"
    assert seam.requests.total == 0, "refused before any request"
