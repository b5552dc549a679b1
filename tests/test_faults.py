"""The store over a misbehaving endpoint: FaultProxy faults, botocore retries, the
operation deadline, and idempotent ``finish_turn`` when a response is lost."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import os
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from s3_eventstore import (
    ConfigurationError,
    S3EventStore,
    StorageError,
    StorageThrottledError,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
)
from s3_eventstore.demo.embedded import CREDENTIALS
from s3_eventstore.testing.conformance import make_event
from s3_eventstore.testing.faultproxy import ALL_KINDS, FaultKind, FaultProxy, classify
from tests.conftest import all_keys
from tests.faults_fixtures import read_behind, running_proxy, store_via

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


@pytest.fixture
def proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    with running_proxy(s3_server) as fault_proxy:
        yield fault_proxy


async def _turn(store: S3EventStore, thread: str, turn: int, n: int = 3) -> list[Any]:
    events = [make_event(i) for i in range(n)]
    for event in events:
        await store.append(thread, turn, event)
    return events


_FAKE_AUTH = {  # moto serves any signature, but treats a request without one as anonymous
    "Authorization": "AWS4-HMAC-SHA256 Credential=embedded/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
}


_EVERY_ATTEMPT = 4
"""Faults that outlast one call with ``max_attempts=1`` (one attempt; the store passes it
as botocore's ``total_max_attempts``), since aiohttp silently resends an idempotent request once
when a reused connection drops."""


_RESET_CODES = {"ConnectionClosedError", "EndpointConnectionError"}


# --- the proxy itself --------------------------------------------------------------------


def test_classify_names_s3_operations() -> None:
    assert classify("PUT", "/b/k/x.zst") == "PutObject"
    assert classify("PUT", "/b/k?partNumber=1&uploadId=u") == "UploadPart"
    assert classify("PUT", "/b") == "CreateBucket"
    assert classify("GET", "/b/k") == "GetObject"
    assert classify("GET", "/b?list-type=2&prefix=a") == "ListObjectsV2"
    assert classify("HEAD", "/b/k") == "HeadObject"
    assert classify("POST", "/b?delete") == "DeleteObjects"
    assert classify("POST", "/b/k?uploads") == "CreateMultipartUpload"
    assert classify("DELETE", "/b/k") == "DeleteObject"


async def test_quiet_proxy_is_transparent(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket) as store:
        events = await _turn(store, "t", 0)
        await store.finish_turn("t", 0)
        turn = await store.get_turn("t", 0)
        assert turn is not None
        assert list(turn.events) == events
        assert await store.event_count("t") == 3
    stats = proxy.stats()
    assert stats.requests == {"GetObject": 1, "ListObjectsV2": 1, "PutObject": 1}
    assert stats.faults == {}
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == events


@pytest.mark.moto_only(
    reason="its raw requests carry a fake signature (Signature=0) that only moto accepts"
)
def test_keep_alive_expect_continue_and_chunked_bodies(
    proxy: FaultProxy, bucket: str, backdoor: Any
) -> None:
    """Bytes are forwarded faithfully whatever the framing; connections are reused."""
    client = boto3.client("s3", endpoint_url=proxy.endpoint_url, **CREDENTIALS)
    # botocore sends `Expect: 100-continue` for file-like bodies.
    client.put_object(Bucket=bucket, Key="expect", Body=io.BytesIO(b"x" * 70_000))
    assert backdoor.get_object(Bucket=bucket, Key="expect")["Body"].read() == b"x" * 70_000
    # Chunked request body and two requests on one kept-alive connection.
    connection = http.client.HTTPConnection(proxy.endpoint_url.removeprefix("http://"))
    connection.request(
        "PUT",
        f"/{bucket}/chunked",
        body=iter([b"abc", b"defg"]),
        headers=_FAKE_AUTH,
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"")
    assert backdoor.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"abcdefg"
    sock = connection.sock
    connection.request("GET", f"/{bucket}/chunked", headers=_FAKE_AUTH)
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"abcdefg")
    assert connection.sock is sock
    connection.close()
    client.close()


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        (FaultKind.INTERNAL_ERROR, StorageUnavailableError, {"InternalError"}),
        (FaultKind.SLOW_DOWN, StorageThrottledError, {"SlowDown"}),
        # aiohttp reports an RST as a closed connection or as a socket error, by timing.
        (FaultKind.RESET, StorageUnavailableError, _RESET_CODES),
        (FaultKind.DROP_RESPONSE, StorageUnavailableError, _RESET_CODES),
    ],
)
async def test_each_fault_surfaces_typed_without_retries(
    proxy: FaultProxy,
    s3_server: EmbeddedS3Server,
    bucket: str,
    kind: FaultKind,
    error: type[Exception],
    code: set[str],
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket, max_attempts=1) as store:
        # Enough faults for every attempt: botocore's and aiohttp's own silent retry.
        proxy.plan_next(kind, count=_EVERY_ATTEMPT, match="ListObjectsV2")
        with pytest.raises(error, match=r"^ListObjectsV2 archive/v1/threads/\S+ failed: ") as info:
            await store.get_turns("t")
        assert info.value.code in code
        assert info.value.__cause__ is not None
        proxy.clear_plans()
        assert await store.get_turns("t") == []
    assert set(proxy.stats().faults) == {kind.value}


@pytest.mark.parametrize("kind", ALL_KINDS)  # the transient kinds
async def test_one_fault_of_each_kind_is_absorbed_by_retries(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, kind: FaultKind, backdoor: Any
) -> None:
    proxy.delay_seconds = 2.0  # past the 0.5 s read timeout below
    async with store_via(proxy.endpoint_url, s3_server, bucket, read_timeout=0.5) as store:
        events = await _turn(store, "t", 7)
        proxy.plan_next(kind, match="PutObject")
        await store.finish_turn("t", 7)
        assert store.open_turns() == []
    assert proxy.stats().requests["PutObject"] >= 2  # one faulted, then a retry
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == events


# --- idempotent finish_turn ----------------------------------------------------------------


async def test_lost_put_response_is_recognised_on_retry(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """PUT applied, response lost; botocore's retry meets 412; the key (one GET) shows our writer."""
    async with store_via(proxy.endpoint_url, s3_server, bucket) as store:
        events = await _turn(store, "t", 1)
        proxy.plan_next(FaultKind.DROP_RESPONSE, match="PutObject")
        await store.finish_turn("t", 1)
        assert proxy.stats().requests == {
            "GetObject": 1,
            "PutObject": 2,
        }  # the 412, then the key read
        assert store.open_turns() == []
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == events
    assert proxy.stats().faults == {"drop_response": 1}
    (key,) = all_keys(backdoor, bucket)
    assert key == store.layout.turn_key("t", 1)
    assert read_behind(backdoor, bucket, key) == events


@pytest.mark.parametrize("kind", [FaultKind.DROP_RESPONSE, FaultKind.DELAY])
async def test_caller_retrying_finish_turn_after_an_error_succeeds(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, kind: FaultKind
) -> None:
    """With one attempt the lost response surfaces; the turn stays open, intact, and a
    second ``finish_turn`` (same writer id) completes it exactly once."""
    gate = proxy.hold_next(match="PutObject") if kind is FaultKind.DELAY else None
    if gate is None:
        proxy.plan_next(kind, match="PutObject")
    proxy.plan_next(FaultKind.RESET, count=_EVERY_ATTEMPT, match="PutObject")  # retries fail
    async with store_via(
        proxy.endpoint_url, s3_server, bucket, max_attempts=1, read_timeout=0.5
    ) as store:
        events = await _turn(store, "t", 2)
        with pytest.raises(StorageUnavailableError, match=r"^PutObject archive/v1/\S+ failed: "):
            await store.finish_turn("t", 2)
        proxy.clear_plans()
        (info,) = store.open_turns()
        assert (info.thread_id, info.turn, info.events) == ("t", 2, 3)
        if gate is not None:  # the timed-out PUT reaches the server only now
            gate.release()
            await asyncio.to_thread(_wait_for_key, backdoor, bucket, store.layout.turn_key("t", 2))
        await store.finish_turn("t", 2)
        assert store.open_turns() == []
    assert proxy.stats().requests["GetObject"] == 1  # the 412 of the retry, recognised
    (key,) = all_keys(backdoor, bucket)
    assert read_behind(backdoor, bucket, key) == events


def _wait_for_key(backdoor: Any, bucket: str, key: str) -> None:
    waiter = backdoor.get_waiter("object_exists")
    waiter.wait(Bucket=bucket, Key=key, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})


async def test_another_object_under_the_key_hands_the_events_back(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket) as other:
        await _turn(other, "t", 3, n=1)
        await other.finish_turn("t", 3)
    original = all_keys(backdoor, bucket)
    async with store_via(proxy.endpoint_url, s3_server, bucket) as store:
        events = await _turn(store, "t", 3)
        proxy.plan_next(FaultKind.INTERNAL_ERROR, match="PutObject")
        key = store.layout.turn_key("t", 3)
        with pytest.raises(
            TurnAlreadyFinishedError,
            match=rf"^turn 3 is already finished in thread 't' \(object '{key}' exists\)$",
        ) as info:
            await store.finish_turn("t", 3)
        assert info.value.unwritten_events == tuple(events)
        assert info.value.key == key
        assert store.open_turns() == []
    assert all_keys(backdoor, bucket) == original
    assert len(read_behind(backdoor, bucket, key)) == 1


# --- the operation deadline ------------------------------------------------------------------


async def test_operation_timeout_bounds_a_call_and_is_typed(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    gate = proxy.hold_next(match="PutObject")
    try:
        async with store_via(
            proxy.endpoint_url,
            s3_server,
            bucket,
            read_timeout=30,
            operation_timeout=0.3,
            check_endpoint=False,  # the held PUT is the turn's, not the endpoint probe's
        ) as store:
            await _turn(store, "t", 4)
            with pytest.raises(
                StorageUnavailableError,
                match=r"^PutObject \S+ failed: TimeoutError: no response within "
                r"operation_timeout=0\.3s \(retries included\)$",
            ) as info:
                await store.finish_turn("t", 4)
            assert isinstance(info.value.__cause__, TimeoutError)
            assert info.value.operation == "PutObject"
            assert [i.events for i in store.open_turns()] == [3]
    finally:
        gate.release(FaultKind.RESET)


async def test_operation_timeout_bounds_retries_and_backoff(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """Every attempt fails fast, but 30 attempts with backoff would take far longer."""
    proxy.rate, proxy.kinds = 1.0, (FaultKind.INTERNAL_ERROR,)
    async with store_via(
        proxy.endpoint_url, s3_server, bucket, max_attempts=30, operation_timeout=2
    ) as store:
        with pytest.raises(StorageUnavailableError, match=r"operation_timeout=2s \(retries"):
            await store.get_turns("t")
    assert 1 <= proxy.stats().requests["ListObjectsV2"] < 30


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "5"])
def test_operation_timeout_must_be_positive_seconds(bad: Any) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^operation_timeout must be a positive number of seconds$"
    ):
        S3EventStore("bucket", operation_timeout=bad)


def test_operation_timeout_none_disables_the_bound() -> None:
    assert S3EventStore("bucket", operation_timeout=None).operation_timeout is None
    assert S3EventStore("bucket").operation_timeout == 60.0


# --- soak ------------------------------------------------------------------------------------

LANES = 4
"""Conversations (threads) each soak worker runs at once, as an agent host would."""


@pytest.mark.slow
async def test_soak_nothing_lost_nothing_corrupted(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, atomic_conditional_writes: bool
) -> None:
    """8 workers (own stores, own clients, 4 conversations each) finish 500 turns each while ~20% of requests
    are faulted across every kind. Every turn whose finish_turn returned is in the bucket
    exactly once with exactly its events; every turn whose finish_turn raised is still
    open, intact, and finishes once the faults stop. Sizes: S3ES_SOAK_WORKERS,
    S3ES_SOAK_TURNS, S3ES_SOAK_FAULT_RATE."""
    workers = int(os.environ.get("S3ES_SOAK_WORKERS", "8"))
    turns = int(os.environ.get("S3ES_SOAK_TURNS", "500"))
    rate = float(os.environ.get("S3ES_SOAK_FAULT_RATE", "0.2"))
    started = time.monotonic()
    written: dict[tuple[str, int], list[Any]] = {}
    failed: dict[tuple[str, int], list[Any]] = {}
    failures: Counter[str] = Counter()
    with FaultProxy(
        s3_server.endpoint_url,
        seed=8500,
        rate=rate,
        delay_seconds=1.5,  # past the 1 s read timeout
        # moto decides If-None-Match unlocked: the proxy serialises conditional writes
        # there; a server that decides them atomically gets them concurrently.
        serialize_conditional_writes=not atomic_conditional_writes,
    ) as gateway:
        async with contextlib.AsyncExitStack() as stack:
            stores = [
                await stack.enter_async_context(
                    store_via(
                        gateway.endpoint_url,
                        s3_server,
                        bucket,
                        max_attempts=2,
                        read_timeout=1.0,
                        connect_timeout=1.0,
                    )
                )
                for _ in range(workers)
            ]

            async def conversation(index: int, store: S3EventStore, lane: int) -> None:
                rng = random.Random(index * 100 + lane)
                for turn in range(lane, turns, LANES):
                    thread = f"soak-{index}-{lane}"
                    events = [
                        make_event(n, worker=index, turn=turn, pad="x" * rng.randint(0, 300))
                        for n in range(rng.randint(0, 6))
                    ]
                    for event in events:
                        await store.append(thread, turn, event)
                    try:
                        await store.finish_turn(thread, turn)
                    except StorageError as err:
                        failures[type(err).__name__] += 1
                        failed[(thread, turn)] = events
                    else:
                        written[(thread, turn)] = events

            opened = time.monotonic()
            await asyncio.gather(
                *(
                    conversation(i, store, lane)
                    for i, store in enumerate(stores)
                    for lane in range(LANES)
                )
            )
            worked = time.monotonic()
            faulted = gateway.stats()
            calls = sum(sum(store.requests.calls.values()) for store in stores)

            # Faults off: every failed turn is still open with its buffer, and finishes.
            gateway.quiet()
            for index, store in enumerate(stores):
                mine = {k: v for k, v in failed.items() if k[0].startswith(f"soak-{index}-")}
                still_open = {(i.thread_id, i.turn): i.events for i in store.open_turns()}
                assert still_open == {k: len(v) for k, v in mine.items()}
                for thread, turn in mine:
                    await store.finish_turn(thread, turn)
                assert store.open_turns() == []

    checked = time.monotonic()
    expected = {**written, **failed}
    layout = stores[0].layout
    keys = all_keys(backdoor, bucket)
    with ThreadPoolExecutor(4) as pool:
        contents = list(pool.map(lambda key: read_behind(backdoor, bucket, key), keys))
    found: Counter[tuple[str, int]] = Counter()
    corrupted = 0
    for key, events in zip(keys, contents, strict=True):
        parsed = layout.parse_key(key)
        assert parsed is not None, key
        found[(parsed.thread_id, parsed.turn)] += 1
        if events != expected.get((parsed.thread_id, parsed.turn)):
            corrupted += 1
    lost = len(set(expected) - set(found))
    duplicated = sum(count - 1 for count in found.values()) + len(set(found) - set(expected))
    elapsed = time.monotonic() - started
    print(
        f"\nsoak: {workers} workers x {turns} turns in {elapsed:.1f} s (clients "
        f"{opened - started:.1f} s, workers {worked - opened:.1f} s, retry "
        f"{checked - worked:.1f} s, backdoor check {elapsed - (checked - started):.1f} s)\n"
        f"  requests at the proxy: {faulted.total_requests} {faulted.requests}\n"
        f"  faults injected: {faulted.total_faults} {faulted.faults}\n"
        f"  faults by operation: {faulted.faults_by_operation}\n"
        f"  logical S3 calls: {calls}; retries (requests - calls): "
        f"{faulted.total_requests - calls}\n"
        f"  finish_turn raised: {len(failed)} {dict(failures)}; all finished on retry\n"
        f"  turns lost: {lost}, duplicated: {duplicated}, corrupted: {corrupted}"
    )
    assert (lost, duplicated, corrupted) == (0, 0, 0)
    assert len(found) == workers * turns
    assert faulted.total_faults > 0
