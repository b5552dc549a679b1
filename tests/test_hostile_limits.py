"""Issue 13, items 3 and 5 in the S3 store: whatever ``append`` accepts, ``finish_turn``
can write (thread ids against the key and the 2 KB metadata limit), and
``max_buffer_bytes`` counts the memory envelopes really hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import (
    AgentEventEnvelope,
    BufferLimitError,
    InvalidThreadIdError,
    S3EventStore,
)
from s3_eventstore.format.manifest import METADATA_LIMIT_BYTES, largest_metadata_bytes
from s3_eventstore.format.stream import TurnStreamEncoder
from s3_eventstore.testing.conformance import make_event

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server


def longest_timestamp_event(sequence: int) -> AgentEventEnvelope:
    """An event whose timestamp is as long as envelopes may have it, with the separator
    JSON escapes longest: the worst a manifest has to carry."""
    timestamp = "2025-06-01\x0012:00:00." + "9" * 38 + "-23:59"
    return AgentEventEnvelope.create("x", sequence=sequence, timestamp=timestamp)


@pytest.mark.parametrize(
    "thread_id",
    [
        "\x01" * 300,  # the input: fits the key, not the metadata
        "\x1f" * 250,
        "\x00" * 280,
        '"' * 900,  # fits the metadata, not the key
        "a" * 1000,
    ],
    ids=lambda t: f"{t[:1]!r}x{len(t)}",
)
async def test_append_refuses_thread_ids_no_finish_could_write(thread_id: str) -> None:
    store = S3EventStore("bucket-1", "archive/v1")  # never opened: refused before requests
    with pytest.raises(InvalidThreadIdError, match="too long"):
        await store.append(thread_id, 1, make_event(0))
    with pytest.raises(InvalidThreadIdError, match="too long"):
        await store.finish_turn(thread_id, 1)
    assert store.open_turns() == []
    assert store.client is None


async def test_the_longest_accepted_thread_id_finishes_and_reads_back(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """The largest control-character thread id append accepts, with the longest
    timestamps: finish_turn writes it (moto does not enforce the 2 KB limit, so the
    manifest's size is checked here too)."""
    count = 1
    while largest_metadata_bytes("\x01" * (count + 1)) <= METADATA_LIMIT_BYTES:
        count += 1
    thread_id = "\x01" * count
    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        events = [longest_timestamp_event(i) for i in range(2)]
        for event in events:
            await store.append(thread_id, 2**64 - 1, event)
        await store.finish_turn(thread_id, 2**64 - 1)
        turn = await store.get_turn(thread_id, 2**64 - 1)
        assert turn is not None
        assert list(turn.events) == events
        head = await store.objects.head(store.layout.turn_key(thread_id, 2**64 - 1))
        assert head is not None
        assert sum(len(k) + len(v) for k, v in head.metadata.items()) <= METADATA_LIMIT_BYTES
        with pytest.raises(InvalidThreadIdError):
            await store.append(thread_id + "\x01", 1, events[0])


def test_a_failed_stream_finish_can_be_retried_without_zstd_errors() -> None:
    encoder = TurnStreamEncoder("t", 1, level=3, writer="w" * 32)
    encoder.add(make_event(0))
    moment: Any = "not a datetime"  # makes finish fail after the frame was flushed
    with pytest.raises(AttributeError):
        encoder.finish(moment)
    body = encoder.finish(datetime(2026, 1, 1, tzinfo=UTC))
    assert encoder.manifest is not None
    assert encoder.manifest.events == 1
    assert body
    with pytest.raises(RuntimeError, match="finished"):
        encoder.add(make_event(1))


@pytest.mark.parametrize("path", ["create", "from_json"])
async def test_the_budget_counts_real_memory(path: str) -> None:
    events = [make_event(i) for i in range(200)]
    if path == "from_json":
        events = [AgentEventEnvelope.from_json(bytes(e.to_json())) for e in events]
    store = S3EventStore("bucket-1", "archive/v1", max_turn_buffer_bytes=1 << 30)
    for event in events:
        await store.append("t", 1, event)
    held = sum(event.memory_size for event in events)
    assert store.buffered_bytes == held
    assert held > 2 * sum(event.wire_size + 1 for event in events)  # the old undercount
    (info,) = store.open_turns()
    assert info.memory_bytes == held
    assert info.buffered_bytes == sum(event.wire_size + 1 for event in events)
    await store.discard_turn("t", 1)
    assert store.buffered_bytes == 0


async def test_the_limit_refuses_at_real_memory() -> None:
    event = make_event(0)
    store = S3EventStore("bucket-1", "archive/v1", max_buffer_bytes=10 * event.memory_size)
    for _ in range(10):
        await store.append("t", 1, event)
    with pytest.raises(BufferLimitError):
        await store.append("t", 1, event)
    assert store.buffered_bytes == 10 * event.memory_size


# --- 6. counts check what they can without bodies ------------------------------------------


def _encoded(thread: str, turn: int, n: int) -> Any:
    from s3_eventstore.format.turn import TurnCodec

    return TurnCodec().encode(thread, turn, [make_event(i) for i in range(n)], writer="w" * 32)


def _metadata(manifest: Any, **changes: Any) -> dict[str, str]:
    import dataclasses

    result: dict[str, str] = dataclasses.replace(manifest, **changes).to_metadata()
    return result


@pytest.mark.parametrize(
    "planted",
    ["other_thread", "other_turn", "forged_count", "zero_events", "size", "zero_byte_segment"],
)
async def test_counts_refuse_what_the_full_read_refuses(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, planted: str
) -> None:
    """The issue's inputs (a copy of another thread's turn planted as turn 5, a manifest
    whose events was forged to 1000, a zero-byte object named like a segment) and
    variants: event_count, get_events_since and get_turns all raise CorruptObjectError."""
    from s3_eventstore import CorruptObjectError

    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        await store.append("t", 1, make_event(0))
        await store.finish_turn("t", 1)
        key = store.layout.turn_key("t", 5)
        if planted == "zero_byte_segment":
            key = store.layout.segment_key("t", 5, 9, 40)
            body, metadata = b"", {}
        else:
            source = {"other_thread": ("u", 5), "other_turn": ("t", 4)}.get(planted, ("t", 5))
            encoded = _encoded(*source, n=3)
            body, metadata = encoded.body, encoded.metadata
            if planted == "forged_count":
                metadata = _metadata(encoded.manifest, events=1000)
            elif planted == "zero_events":
                metadata = _metadata(encoded.manifest, events=0)
            elif planted == "size":
                metadata = _metadata(encoded.manifest, stored_bytes=len(body) + 1)
        backdoor.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as fresh:
        with pytest.raises(CorruptObjectError):
            await fresh.get_turns("t")
        with pytest.raises(CorruptObjectError):
            await fresh.event_count("t")
        with pytest.raises(CorruptObjectError):
            await fresh.get_events_since("t", 1)


async def test_a_segment_shorter_than_its_stubs_say_is_corrupt_not_a_storage_error(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """A compacted thread whose segment was emptied (metadata kept): get_turn's ranged GET,
    sized from the stub, runs past the end and the server answers 416. Once that escaped
    as StorageError from get_turn and aborted verify; it is CorruptObjectError, and
    verify reports it."""
    from s3_eventstore import CorruptObjectError

    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        for turn in range(1, 4):
            await store.append("t", turn, make_event(turn))
            await store.finish_turn("t", turn)
        assert (await store.compact("t")).turns_compacted == 3
    listed = backdoor.list_objects_v2(Bucket=bucket, Prefix="archive/v1/")["Contents"]
    [segment] = [o["Key"] for o in listed if o["Key"].rsplit("/", 1)[1].startswith("seg-")]
    metadata = backdoor.head_object(Bucket=bucket, Key=segment)["Metadata"]
    backdoor.put_object(Bucket=bucket, Key=segment, Body=b"", Metadata=metadata)
    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as fresh:
        with pytest.raises(CorruptObjectError, match="shorter than the byte range"):
            await fresh.get_turn("t", 2)
        report = await fresh.verify("t")
        assert report.problems
        assert {p.error for p in report.problems} == {"CorruptObjectError"}


@pytest.mark.parametrize("damage", ["short-by-10", "planted-from-another-thread"])
async def test_counts_of_a_compacted_thread_check_the_segment(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, damage: str
) -> None:
    """Item 6 for segments: event_count of a compacted thread comes from the segment's
    name, which a truncated segment (same name and metadata, 10 bytes short) or another
    thread's segment copied under this thread's folder keeps. The count checks the
    segment's index against name, thread and listed size first, as every full read
    does: CorruptObjectError, never a number."""
    from s3_eventstore import CorruptObjectError

    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as store:
        for thread in ("t", "u"):
            for turn in range(1, 4):
                await store.append(thread, turn, make_event(turn))
                await store.finish_turn(thread, turn)
            assert (await store.compact(thread)).turns_compacted == 3
    listed = backdoor.list_objects_v2(Bucket=bucket, Prefix="archive/v1/")["Contents"]
    segments = {
        o["Key"].split("/thread=")[1].split("/")[0]: o["Key"]
        for o in listed
        if o["Key"].rsplit("/", 1)[1].startswith("seg-")
    }
    victim = segments["t"]
    if damage == "short-by-10":
        body = backdoor.get_object(Bucket=bucket, Key=victim)["Body"].read()
        metadata = backdoor.head_object(Bucket=bucket, Key=victim)["Metadata"]
        backdoor.put_object(Bucket=bucket, Key=victim, Body=body[:-10], Metadata=metadata)
    else:
        source = segments["u"]
        backdoor.copy_object(
            Bucket=bucket, Key=victim, CopySource={"Bucket": bucket, "Key": source}
        )
    async with S3EventStore(
        bucket, "archive/v1", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as fresh:
        with pytest.raises(CorruptObjectError):
            await fresh.event_count("t")
        with pytest.raises(CorruptObjectError):
            await fresh.get_events_since("t", 1)
        with pytest.raises(CorruptObjectError):
            await fresh.get_turns("t")
        assert await fresh.event_count("u") == 3  # the intact thread still counts
