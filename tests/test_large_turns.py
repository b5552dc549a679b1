"""Large turns: streamed to S3 in a multipart upload while they are appended.

Objects are checked behind the store's back (boto3 + plain zstandard). Events carry
random (incompressible) payloads so that a turn really spans several 5 MiB parts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import random
import struct
from typing import TYPE_CHECKING, Any

import pytest
import zstandard
from botocore.exceptions import EndpointConnectionError

from s3_eventstore import (
    AgentEventEnvelope,
    S3EventStore,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
    TurnStreamingError,
    UnsafeEndpointError,
)
from s3_eventstore.format.stream import STREAM_METADATA_KEY, TRAILER_BYTES
from s3_eventstore.s3.multipart import MIN_PART_BYTES, StreamedTurn
from s3_eventstore.s3.probe import forget_probes
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy
from tests.conftest import all_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

MiB = 1024 * 1024
PREFIX = "archive/v1"


def blob_events(total_bytes: int, *, seed: int = 7, size: int = 64 * 1024) -> list[Any]:
    """Events of ``size`` random base64 bytes each, ``total_bytes`` of JSON lines in all."""
    rng = random.Random(seed)
    events: list[AgentEventEnvelope] = []
    written = 0
    while written < total_bytes:
        data = base64.b64encode(rng.randbytes(size * 3 // 4)).decode("ascii")
        event = AgentEventEnvelope.create(
            "tool_output",
            {"data": data},
            sequence=len(events),
            event_id=f"00000000-0000-4000-8000-{len(events):012d}",
            timestamp=f"2026-01-01T00:00:{len(events) % 60:02d}.{len(events):09d}Z",
        )
        events.append(event)
        written += event.wire_size + 1
    return events


def new_store(server: EmbeddedS3Server, bucket: str, **options: Any) -> S3EventStore:
    """A store streaming past 5 MiB; no endpoint probe unless asked (the probes run on
    every non-AWS endpoint by default, loopback included, and their requests would blur
    the streaming counts these tests make; the probe's own test asks for it)."""
    options.setdefault("max_turn_buffer_bytes", 5 * MiB)
    options.setdefault("multipart_part_bytes", MIN_PART_BYTES)
    options.setdefault("check_endpoint", False)
    return S3EventStore(
        bucket, PREFIX, endpoint_url=server.endpoint_url, session=server.session(), **options
    )


def uploads(backdoor: Any, bucket: str) -> list[dict[str, Any]]:
    return list(backdoor.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def payload_of(events: list[AgentEventEnvelope]) -> bytes:
    return b"".join(event.to_json() + b"\n" for event in events)


def streamed(store: S3EventStore, thread_id: str, turn: int) -> StreamedTurn:
    stream = store._open[thread_id][turn].stream
    assert stream is not None
    return stream


@pytest.fixture(scope="module")
def big_turn() -> list[AgentEventEnvelope]:
    return blob_events(40 * MiB)


class FailNext:
    """Makes the next ``count`` calls of one S3 operation fail with a network error."""

    def __init__(self, client: Any, operation: str, count: int = 1) -> None:
        self.remaining = count
        self.failed = 0
        client.meta.events.register(
            f"before-call.s3.{operation}", self._before, unique_id=f"fail-{operation}"
        )

    def _before(self, **_: Any) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            self.failed += 1
            raise EndpointConnectionError(endpoint_url="http://injected-fault")


class Gate:
    """Holds every call of one operation until opened (an async botocore hook)."""

    def __init__(self, client: Any, operation: str) -> None:
        self.open = asyncio.Event()
        self.arrived = asyncio.Event()
        client.meta.events.register(
            f"before-call.s3.{operation}", self._before, unique_id=f"gate-{operation}"
        )

    async def _before(self, **_: Any) -> None:
        self.arrived.set()
        await self.open.wait()


async def test_streamed_turn_round_trips_exactly(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, big_turn: list[AgentEventEnvelope]
) -> None:
    async with new_store(s3_server, bucket) as store:
        peak = 0
        for event in big_turn:
            await store.append("t", 1, event)
            peak = max(peak, store.buffered_bytes)
        (info,) = store.open_turns()
        assert info.streaming
        assert (info.events, info.buffered_bytes) == (len(big_turn), len(payload_of(big_turn)))
        # Bounded memory: the 5 MiB buffer, then at most 2 parts waiting + 1 uploading +
        # the tail, never the whole 40 MiB turn.
        assert peak <= 5 * MiB + 4 * MIN_PART_BYTES
        assert all_keys(backdoor, bucket) == [], "parts are invisible before completion"
        assert len(uploads(backdoor, bucket)) == 1
        await store.finish_turn("t", 1)
        assert store.buffered_bytes == 0
        assert store.open_turns() == []
        calls = store.requests.calls
        assert calls["PutObject"] == 0
        assert calls["CreateMultipartUpload"] == 1
        assert calls["CompleteMultipartUpload"] == 1
        assert calls["UploadPart"] >= 5

    key = store.layout.turn_key("t", 1)
    assert all_keys(backdoor, bucket) == [key]
    assert uploads(backdoor, bucket) == []
    # Behind the store's back: plain zstandard gives exactly the JSON lines.
    response = backdoor.get_object(Bucket=bucket, Key=key)
    body = response["Body"].read()
    payload = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True).read()
    assert payload == payload_of(big_turn)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == payload
    # The metadata names the writer; the manifest is in the trailer (a skippable frame).
    header = json.loads(response["Metadata"][STREAM_METADATA_KEY])
    assert (header["thread_id"], header["turn"], header["manifest"]) == ("t", 1, "trailer")
    magic, size = struct.unpack_from("<II", body, len(body) - TRAILER_BYTES)
    assert (magic, size) == (0x184D2A5E, TRAILER_BYTES - 8)
    manifest = json.loads(body[-size:])
    assert manifest["sha256"] == hashlib.sha256(payload).hexdigest()
    assert manifest["events"] == len(big_turn)
    assert manifest["raw_bytes"] == len(payload)
    assert manifest["stored_bytes"] == len(body)
    assert manifest["writer"] == header["writer"]
    assert manifest["first_timestamp"] == big_turn[0].timestamp
    assert manifest["last_timestamp"] == big_turn[-1].timestamp

    async with new_store(s3_server, bucket) as reader:
        assert await reader.event_count("t") == len(big_turn)  # HEAD + ranged GET of the trailer
        assert reader.requests.calls["GetObject"] == 1
        turn = await reader.get_turn("t", 1)
        assert turn is not None
        assert turn.finished
        assert list(turn.events) == big_turn
        assert await reader.get_events_since("t", len(big_turn) - 2) == big_turn[-2:]
        report = await reader.verify("t")
        assert (report.objects_checked, report.ok, report.problems) == (1, 1, ())


async def test_reads_of_an_open_streamed_turn_refuse_rather_than_answer_partly(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    events = blob_events(6 * MiB)
    async with new_store(s3_server, bucket) as store:
        await store.append("t", 0, events[0])
        await store.finish_turn("t", 0)
        for event in events:
            await store.append("t", 1, event)
        message = (
            "turn 1 of thread 't' is open and being streamed to S3 (it outgrew "
            "max_turn_buffer_bytes), so its events are not in memory; they can be read once "
            "finish_turn completes"
        )
        with pytest.raises(TurnStreamingError, match=r"^turn 1 of thread 't' is open") as info:
            await store.get_turn("t", 1)
        assert str(info.value) == message
        assert (info.value.thread_id, info.value.turn) == ("t", 1)
        with pytest.raises(TurnStreamingError):
            await store.get_turns("t")
        with pytest.raises(TurnStreamingError):
            await store.get_events_since("t", 0)
        # Counting needs no events: exact.
        assert await store.event_count("t") == 1 + len(events)
        # Offsets past the streamed turn need none of its events either.
        assert await store.get_events_since("t", 1 + len(events)) == []
        await store.finish_turn("t", 1)
        assert await store.get_events_since("t", 1) == events


async def test_discard_aborts_the_upload(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    events = blob_events(16 * MiB)
    async with new_store(s3_server, bucket) as store:
        for event in events:
            await store.append("t", 1, event)
        await store.append("t", 2, events[0])
        assert [(i.turn, i.streaming) for i in store.open_turns()] == [(1, True), (2, False)]
        await streamed(store, "t", 1).drain()
        assert len(uploads(backdoor, bucket)) == 1
        assert await store.discard_turn("t", 1) == ()
        assert uploads(backdoor, bucket) == []
        assert store.requests.calls["AbortMultipartUpload"] == 1
        assert [i.turn for i in store.open_turns()] == [2]
        assert store.buffered_bytes == events[0].memory_size  # what the budget counts
        assert await store.get_turn("t", 1) is None
        # The turn can start over, small this time.
        await store.append("t", 1, events[1])
        await store.finish_turn("t", 1)
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert turn.events == (events[1],)
    # Leaving the store persisted the turn still open (close() flushes by default).
    assert all_keys(backdoor, bucket) == [store.layout.turn_key("t", n) for n in (1, 2)]


async def test_clear_aborts_streamed_uploads(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    async with new_store(s3_server, bucket) as store:
        for event in blob_events(12 * MiB):
            await store.append("t", 1, event)
        await streamed(store, "t", 1).drain()
        assert len(uploads(backdoor, bucket)) == 1
        await store.clear("t")
        assert uploads(backdoor, bucket) == []
        assert store.open_turns() == []
        assert store.buffered_bytes == 0


async def test_a_second_completion_of_the_key_is_refused(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, s3_backend: str
) -> None:
    if s3_backend == "radosgw":
        pytest.skip(
            "radosgw completes onto an existing key despite If-None-Match: the store "
            "refuses to stream there (test_no_streaming_where_completion_ignores_the_condition)"
        )
    first, second = blob_events(7 * MiB, seed=1), blob_events(7 * MiB, seed=2)
    async with new_store(s3_server, bucket) as one, new_store(s3_server, bucket) as two:
        for a, b in zip(first, second, strict=False):
            await one.append("t", 1, a)
            await two.append("t", 1, b)
        await one.finish_turn("t", 1)
        # moto checks If-None-Match on CompleteMultipartUpload (not atomically: racing
        # completions could both win on moto; AWS S3 is atomic). Sequential: refused.
        with pytest.raises(TurnAlreadyFinishedError, match="already finished") as info:
            await two.finish_turn("t", 1)
        assert info.value.unwritten_events == ()  # streamed: not in memory any more
        assert two.open_turns() == []
        assert two.requests.calls["AbortMultipartUpload"] == 1
    assert uploads(backdoor, bucket) == []
    body = backdoor.get_object(Bucket=bucket, Key=one.layout.turn_key("t", 1))["Body"].read()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == payload_of(first)


async def test_a_failed_completion_keeps_the_turn_finishable(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    events = blob_events(11 * MiB)
    async with new_store(s3_server, bucket, max_attempts=1) as store:
        for event in events:
            await store.append("t", 1, event)
        fault = FailNext(store.client, "CompleteMultipartUpload")
        with pytest.raises(StorageUnavailableError, match="CompleteMultipartUpload"):
            await store.finish_turn("t", 1)
        assert fault.failed == 1
        assert [(i.turn, i.streaming, i.events) for i in store.open_turns()] == [
            (1, True, len(events))
        ]
        # The payload is sealed: more events would land after the manifest. Refused, typed.
        with pytest.raises(TurnStreamingError, match="sealed by a finish_turn that failed"):
            await store.append("t", 1, events[0])
        await store.finish_turn("t", 1)
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == events
    assert uploads(backdoor, bucket) == []


async def test_a_completion_whose_answer_was_lost_is_recognised(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    events = blob_events(6 * MiB)
    async with new_store(s3_server, bucket) as store:
        for event in events:
            await store.append("t", 1, event)
        stream = streamed(store, "t", 1)
        await stream.finish()
        assert await stream.complete() is not None  # completed, but say the answer was lost
        await store.finish_turn("t", 1)  # 412 (or moto's idempotent 200): its own object
        assert store.open_turns() == []
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == events


async def test_failed_part_uploads_lose_nothing(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    events = blob_events(24 * MiB)
    recorded: list[AgentEventEnvelope] = []
    async with new_store(s3_server, bucket, max_attempts=1, max_parts_in_flight=1) as store:
        fault = FailNext(store.client, "UploadPart", count=2)
        refused = 0
        operations: list[str | None] = []
        for event in events:
            while True:  # a refused event was not recorded: the caller appends it again
                try:
                    await store.append("t", 1, event)
                    break
                except StorageUnavailableError as err:
                    operations.append(err.operation)
                    refused += 1
            recorded.append(event)
        assert fault.failed == 2
        assert refused == 2  # each later append retries the upload once
        assert operations == ["UploadPart", "UploadPart"]
        await store.finish_turn("t", 1)
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == recorded == events
    assert uploads(backdoor, bucket) == []


async def test_appends_wait_when_parts_pile_up(s3_server: EmbeddedS3Server, bucket: str) -> None:
    events = iter(blob_events(20 * MiB))
    async with new_store(s3_server, bucket, max_parts_in_flight=1) as store:
        await store.open()
        gate = Gate(store.client, "UploadPart")
        appended: list[AgentEventEnvelope] = []
        # Fill until an append has to wait: the first part is held at the gate.
        blocked: asyncio.Task[None] | None = None
        for event in events:
            task = asyncio.ensure_future(store.append("t", 1, event))
            for _ in range(50):  # let it run to its first real wait (no wall-clock time)
                await asyncio.sleep(0)
            if not task.done():
                blocked = task
                appended.append(event)
                break
            task.result()
            appended.append(event)
        assert blocked is not None
        assert gate.arrived.is_set()
        (info,) = store.open_turns()
        assert info.memory_bytes <= 3 * MIN_PART_BYTES
        gate.open.set()
        await blocked
        for event in events:
            await store.append("t", 1, event)
            appended.append(event)
        await store.finish_turn("t", 1)
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == appended


def test_the_limits_are_checked() -> None:
    from s3_eventstore import ConfigurationError

    with pytest.raises(
        ConfigurationError, match=r"^multipart_part_bytes must be an int >= 5242880"
    ):
        S3EventStore("b-1", multipart_part_bytes=MiB)
    with pytest.raises(ConfigurationError, match=r"^max_parts_in_flight must be an int >= 1"):
        S3EventStore("b-1", max_parts_in_flight=0)
    with pytest.raises(ConfigurationError, match=r"^max_turn_buffer_bytes must be an int >= 1"):
        S3EventStore("b-1", max_turn_buffer_bytes=True)


# --- endpoints whose CompleteMultipartUpload ignores If-None-Match (Ceph radosgw 16) -------


async def _append_until_refused(
    store: S3EventStore, turn: int, events: list[AgentEventEnvelope]
) -> tuple[list[AgentEventEnvelope], UnsafeEndpointError]:
    """Append to thread ``t`` until the store refuses: the accepted events and the error."""
    accepted: list[AgentEventEnvelope] = []
    for event in events:
        try:
            await store.append("t", turn, event)
        except UnsafeEndpointError as err:
            return accepted, err
        accepted.append(event)
    raise AssertionError("every append was accepted")


@contextlib.contextmanager
def _ignoring_completion(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    """moto behind a proxy that drops the condition from every CompleteMultipartUpload:
    it then answers like radosgw (moto checks no signature, so the edited request
    passes)."""
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.plan_next(FaultKind.STRIP_CONDITIONS, count=100, match="CompleteMultipartUpload")
        yield proxy


@pytest.mark.moto_only(reason="the proxy edits signed headers; only moto ignores signatures")
async def test_no_streaming_where_completion_ignores_the_condition(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """The append that would start streaming is refused, typed, and records nothing; the
    turn stays open with its events and finishes by one conditional PUT."""
    events = blob_events(6 * MiB)
    with _ignoring_completion(s3_server) as proxy:
        async with S3EventStore(
            bucket,
            PREFIX,
            endpoint_url=proxy.endpoint_url,
            session=s3_server.session(),
            max_turn_buffer_bytes=5 * MiB,
            check_endpoint=True,
        ) as store:
            accepted, error = await _append_until_refused(store, 1, events)
            assert error.code == "ConditionalMultipartIgnored"
            assert error.operation == "CompleteMultipartUpload"
            assert "max_turn_buffer_bytes=5242880" in str(error)
            assert "overwrote an existing key" in str(error)
            assert store.multipart_probe is not None
            assert store.multipart_probe.honoured is False
            assert store.multipart_probe.requests == {
                "PutObject": 1,
                "CreateMultipartUpload": 1,
                "UploadPart": 1,
                "CompleteMultipartUpload": 1,
                "DeleteObject": 1,
            }
            (info_open,) = store.open_turns()
            assert (info_open.events, info_open.streaming) == (len(accepted), False)
            # Refused again without another probe; the turn still finishes, in one PUT.
            with pytest.raises(UnsafeEndpointError):
                await store.append("t", 1, events[len(accepted)])
            assert store.requests.calls["CompleteMultipartUpload"] == 1
            await store.finish_turn("t", 1)
            turn = await store.get_turn("t", 1)
            assert turn is not None
            assert list(turn.events) == accepted
    assert uploads(backdoor, bucket) == []
    assert all_keys(backdoor, bucket) == [store.layout.turn_key("t", 1)]


@pytest.mark.moto_only(reason="the proxy edits signed headers; only moto ignores signatures")
async def test_streaming_there_anyway_when_told_to(
    s3_server: EmbeddedS3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = blob_events(6 * MiB)
    with _ignoring_completion(s3_server) as proxy:
        async with S3EventStore(
            bucket,
            PREFIX,
            endpoint_url=proxy.endpoint_url,
            session=s3_server.session(),
            max_turn_buffer_bytes=5 * MiB,
            multipart_part_bytes=MIN_PART_BYTES,
            check_endpoint=True,
            allow_unsafe_endpoint=True,
        ) as store:
            with caplog.at_level(logging.WARNING, logger="s3_eventstore"):
                for event in events:
                    await store.append("t", 1, event)
            assert "ignores If-None-Match on CompleteMultipartUpload" in caplog.text
            assert [i.streaming for i in store.open_turns()] == [True]
            await store.finish_turn("t", 1)


async def test_the_multipart_probe_runs_once_before_the_first_stream(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """Where completion honours the condition, large turns stream as before; the probe
    costs 5 requests once, and a store with check_endpoint=False costs none."""
    forget_probes()  # results are kept per endpoint per process
    async with new_store(s3_server, bucket, check_endpoint=True) as store:
        for turn in (1, 2):
            for event in blob_events(6 * MiB, seed=turn):
                await store.append("t", turn, event)
            assert [i.streaming for i in store.open_turns()] == [True]
            await store.finish_turn("t", turn)
        assert store.multipart_probe is not None
        assert store.multipart_probe.honoured
        assert store.multipart_probe.detail == "CompleteMultipartUpload onto an existing key: 412"
        assert store.requests.calls["CompleteMultipartUpload"] == 1 + 2
    async with new_store(s3_server, bucket) as unchecked:
        for event in blob_events(6 * MiB, seed=3):
            await unchecked.append("t", 3, event)
        await unchecked.finish_turn("t", 3)
        assert unchecked.multipart_probe is None
        assert unchecked.requests.calls["CompleteMultipartUpload"] == 1
    assert uploads(backdoor, bucket) == []
    assert sorted(all_keys(backdoor, bucket)) == [
        store.layout.turn_key("t", turn) for turn in (1, 2, 3)
    ]


async def test_radosgw_refuses_to_stream_and_keeps_the_barrier(radosgw_server: Any) -> None:
    """On radosgw itself (opt-in): without the probe a second streamed finish overwrites
    the first turn object (what the probe prevents); with it, streaming is refused."""
    from tests.conftest import remove_bucket

    client = radosgw_server.client()
    bucket = "large-turns-radosgw"
    client.create_bucket(Bucket=bucket)
    try:
        first, second = blob_events(6 * MiB, seed=1), blob_events(6 * MiB, seed=2)
        async with (
            new_store(radosgw_server, bucket, check_endpoint=False) as one,
            new_store(radosgw_server, bucket, check_endpoint=False) as two,
        ):
            for a, b in zip(first, second, strict=False):
                await one.append("t", 1, a)
                await two.append("t", 1, b)
            await one.finish_turn("t", 1)
            await two.finish_turn("t", 1)  # no error: radosgw overwrote turn 1
        turn = await _read(radosgw_server, bucket)
        assert turn == second  # the first writer's acknowledged turn is gone
        async with new_store(radosgw_server, bucket, check_endpoint=True) as checked:
            _, error = await _append_until_refused(checked, 2, first)
            assert error.code == "ConditionalMultipartIgnored"
            await checked.finish_turn("t", 2)
    finally:
        remove_bucket(client, bucket)


async def _read(server: Any, bucket: str) -> list[AgentEventEnvelope]:
    async with new_store(server, bucket) as reader:
        turn = await reader.get_turn("t", 1)
        assert turn is not None
        return list(turn.events)
