"""How real S3 servers differ from S3 (and from moto): each behaviour the library meets,
pinned on the server that shows it, with plain boto3 (no library code in the way).

SeaweedFS always runs (its binary is in the test extra); radosgw is an opt-in
(``--s3-backend=radosgw`` or ``S3ES_RADOSGW=1`` with Ceph's packages installed). What
the library does about each difference is tested where the library handles it
(tests/test_doctor.py, tests/test_versioned.py, tests/test_large_turns.py) and listed in
README's "Behaviour that differs between S3 implementations".
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

SERVERS = ["seaweedfs", "radosgw"]
_names = itertools.count()


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def client(server: Any) -> Any:
    return server.client()


@pytest.fixture
def bucket_on(client: Any) -> Any:
    from tests.conftest import remove_bucket

    name = f"servers-{next(_names)}"
    client.create_bucket(Bucket=name)
    yield name
    remove_bucket(client, name)


def _code(err: ClientError) -> tuple[str, int]:
    return (
        str(err.response.get("Error", {}).get("Code")),
        int(err.response["ResponseMetadata"]["HTTPStatusCode"]),
    )


def _race(client: Any, bucket: str, key: str, racers: int) -> list[str]:
    """``racers`` threads PUT ``key`` with ``If-None-Match: *`` released at once."""
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []

    def put(index: int) -> None:
        barrier.wait()
        outcome = _outcome(
            client.put_object, Bucket=bucket, Key=key, Body=f"{index}".encode(), IfNoneMatch="*"
        )
        outcomes.append("won" if outcome is None else outcome[0])

    threads = [threading.Thread(target=put, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_concurrent_conditional_puts_have_exactly_one_winner(server: Any, bucket_on: str) -> None:
    """16 threads PUT one key with ``If-None-Match: *`` at once, 10 times: one 200, the rest
    412 (moto can let two win; its race test needs a serialising proxy, these do not)."""
    from tests.seaweedfs_fixture import s3_client

    assert server.atomic_conditional_writes
    client = s3_client(server.endpoint_url, max_pool_connections=16)
    for trial in range(10):
        outcomes = _race(client, bucket_on, f"race-{trial}", 16)
        assert outcomes == ["PreconditionFailed"] * 15 + ["won"], (trial, outcomes)


# What each server answers, where they differ. ``None``: the request succeeded.
WRONG_CHECKSUM = {"seaweedfs": ("BadDigest", 400), "radosgw": None}
MULTIPART_OVER_EXISTING = {"seaweedfs": ("PreconditionFailed", 412), "radosgw": None}
COPY_OVER_EXISTING = {"seaweedfs": ("PreconditionFailed", 412), "radosgw": None}
PUT_IF_MATCH_CURRENT_ETAG = {"seaweedfs": None, "radosgw": ("PreconditionFailed", 412)}
LISTING_ORDER = {
    "seaweedfs": ["B", "a", "a/b", "a-b", "\u00e9"],  # directory by directory
    "radosgw": ["B", "a", "a-b", "a/b", "\u00e9"],  # UTF-8 byte order, as S3
}


def _outcome(call: Any, **params: Any) -> tuple[str, int] | None:
    try:
        call(**params)
    except ClientError as err:
        return _code(err)
    return None


def test_put_to_a_missing_bucket_is_refused(client: Any) -> None:
    """(SeaweedFS creates the bucket unless started with -s3.autoCreateBucket=false.)"""
    outcome = _outcome(client.put_object, Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert outcome == ("NoSuchBucket", 404)


def test_a_wrong_signature_is_refused(server: Any, bucket_on: str) -> None:
    """moto serves any signature: the fault proxy's raw-request test is moto-only."""
    import boto3

    forged = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id="embedded",
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    assert _outcome(forged.list_objects_v2, Bucket=bucket_on) == ("SignatureDoesNotMatch", 403)


def test_wrong_sha256_checksum(client: Any, bucket_on: str, server: Any) -> None:
    outcome = _outcome(
        client.put_object,
        Bucket=bucket_on,
        Key="bad",
        Body=b"the real body",
        ChecksumSHA256=base64.b64encode(hashlib.sha256(b"another body").digest()).decode(),
    )
    assert outcome == WRONG_CHECKSUM[server.name]
    stored = _outcome(client.head_object, Bucket=bucket_on, Key="bad") is None
    assert stored is (outcome is None)


def test_multipart_completion_with_if_none_match_over_an_existing_key(
    client: Any, bucket_on: str, server: Any
) -> None:
    """The finish barrier of streamed turns: radosgw ignores the condition and overwrites."""
    client.put_object(Bucket=bucket_on, Key="turn", Body=b"finished turn")
    upload = client.create_multipart_upload(Bucket=bucket_on, Key="turn")["UploadId"]
    part = client.upload_part(
        Bucket=bucket_on, Key="turn", UploadId=upload, PartNumber=1, Body=b"late turn"
    )
    outcome = _outcome(
        client.complete_multipart_upload,
        Bucket=bucket_on,
        Key="turn",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        IfNoneMatch="*",
    )
    assert outcome == MULTIPART_OVER_EXISTING[server.name]
    body = client.get_object(Bucket=bucket_on, Key="turn")["Body"].read()
    assert body == (b"late turn" if outcome is None else b"finished turn")
    if outcome is not None:
        client.abort_multipart_upload(Bucket=bucket_on, Key="turn", UploadId=upload)


def test_copy_with_if_none_match_over_an_existing_key(
    client: Any, bucket_on: str, server: Any
) -> None:
    """Why a streamed turn cannot be published by a conditional copy on radosgw either."""
    client.put_object(Bucket=bucket_on, Key="turn", Body=b"finished turn")
    client.put_object(Bucket=bucket_on, Key="private", Body=b"late turn")
    outcome = _outcome(
        client.copy_object,
        Bucket=bucket_on,
        Key="turn",
        CopySource={"Bucket": bucket_on, "Key": "private"},
        IfNoneMatch="*",
    )
    assert outcome == COPY_OVER_EXISTING[server.name]


def test_put_with_if_match_of_the_current_etag(client: Any, bucket_on: str, server: Any) -> None:
    """A wrong ETag is refused everywhere; radosgw 16 refuses the right one too."""
    etag = client.put_object(Bucket=bucket_on, Key="k", Body=b"one")["ETag"]
    wrong = _outcome(client.put_object, Bucket=bucket_on, Key="k", Body=b"x", IfMatch='"0"')
    assert wrong == ("PreconditionFailed", 412)
    outcome = _outcome(client.put_object, Bucket=bucket_on, Key="k", Body=b"two", IfMatch=etag)
    assert outcome == PUT_IF_MATCH_CURRENT_ETAG[server.name]


def test_delete_objects_refuses_more_than_1000_keys(client: Any, bucket_on: str) -> None:
    """moto accepts any number; the library never sends more than 1000."""
    outcome = _outcome(
        client.delete_objects,
        Bucket=bucket_on,
        Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)], "Quiet": True},
    )
    assert outcome is not None
    assert outcome[1] == 400


def test_listing_order_of_a_slash_b_and_a_dash_b(client: Any, bucket_on: str, server: Any) -> None:
    """S3 lists keys in UTF-8 byte order ('-' 0x2D before '/' 0x2F); SeaweedFS lists a
    folder's contents where the folder's name sorts. The store sorts what it lists and
    never depends on this order."""
    for key in ("a", "a-b", "a/b", "B", "\u00e9"):
        client.put_object(Bucket=bucket_on, Key=key, Body=b"")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket_on, PaginationConfig={"PageSize": 2}
    )
    listed = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert listed == LISTING_ORDER[server.name]


def test_deleting_a_delete_marker_by_version_answers(
    client: Any, bucket_on: str, server: Any
) -> None:
    """S3 names the deleted version by VersionId (and, for a marker, DeleteMarkerVersionId
    too); SeaweedFS names a deleted marker by DeleteMarkerVersionId alone."""
    client.put_bucket_versioning(Bucket=bucket_on, VersioningConfiguration={"Status": "Enabled"})
    version = client.put_object(Bucket=bucket_on, Key="k", Body=b"1")["VersionId"]
    marker = client.delete_object(Bucket=bucket_on, Key="k")["VersionId"]
    response = client.delete_objects(
        Bucket=bucket_on,
        Delete={"Objects": [{"Key": "k", "VersionId": marker}, {"Key": "k", "VersionId": version}]},
    )
    deleted = sorted(
        (sorted(item), item.get("VersionId") or item.get("DeleteMarkerVersionId"))
        for item in response["Deleted"]
    )
    marker_fields = {
        "seaweedfs": ["DeleteMarker", "DeleteMarkerVersionId", "Key"],
        "radosgw": ["DeleteMarker", "DeleteMarkerVersionId", "Key", "VersionId"],
    }[server.name]
    assert deleted == sorted([(marker_fields, marker), (["Key", "VersionId"], version)])
    assert client.list_object_versions(Bucket=bucket_on).get("Versions", []) == []


def _same_shard_threads() -> tuple[str, str]:
    """Two thread ids whose folders share a shard and whose names S3 and SeaweedFS list in
    opposite orders: ``thread=x/`` and ``thread=x-N/`` ('-' sorts before '/')."""
    from s3_eventstore.format.keys import thread_shard

    for n in range(10_000):
        if thread_shard(f"x-{n}") == thread_shard("x"):
            return "x", f"x-{n}"
    raise AssertionError("no pair found")


async def test_the_store_does_not_depend_on_listing_order(seaweedfs_server: Any) -> None:
    """On SeaweedFS, which lists ``thread=x/`` before ``thread=x-N/``, reads, the thread
    catalog, verify and purge of the whole archive give S3's answers."""
    from s3_eventstore import S3EventStore
    from s3_eventstore.ops.catalog import iter_threads
    from s3_eventstore.testing.conformance import make_event

    first, second = _same_shard_threads()
    client = seaweedfs_server.client()
    name = f"servers-{next(_names)}"
    client.create_bucket(Bucket=name)
    try:
        async with S3EventStore(
            name,
            "p",
            endpoint_url=seaweedfs_server.endpoint_url,
            session=seaweedfs_server.session(),
        ) as store:
            written: dict[str, list[Any]] = {}
            for thread in (first, second):
                written[thread] = [make_event(n, thread=thread) for n in range(3)]
                for turn in (1, 2):
                    for event in written[thread]:
                        await store.append(thread, turn, event)
                    await store.finish_turn(thread, turn)
            keys = [
                obj["Key"]
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=name)
                for obj in page.get("Contents", [])
            ]
            assert keys != sorted(keys, key=lambda key: key.encode())  # SeaweedFS's order
            assert sorted([thread async for thread in iter_threads(store)]) == [first, second]
            for thread in (first, second):
                turns = await store.get_turns(thread)
                assert [(t.turn, list(t.events)) for t in turns] == [
                    (1, written[thread]),
                    (2, written[thread]),
                ]
            report = await store.verify()
            assert (report.objects_checked, report.ok, report.problems) == (4, 4, ())
            await store.clear(first)
            assert [t.turn for t in await store.get_turns(second)] == [1, 2]
            assert await store.get_turns(first) == []
    finally:
        from tests.conftest import remove_bucket

        remove_bucket(client, name)
