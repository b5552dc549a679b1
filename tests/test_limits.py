"""Memory limits of the write path, and what ``open_turns`` reports about open turns."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, BufferLimitError, EventStoreError, S3EventStore
from s3_eventstore.s3.multipart import MIN_PART_BYTES

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server


def event(sequence: int, text: str = "x" * 100) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(
        "message",
        {"text": text},
        sequence=sequence,
        event_id=f"00000000-0000-4000-8000-{sequence:012d}",
        timestamp="2026-01-01T00:00:00Z",
    )


def new_store(server: EmbeddedS3Server, bucket: str, **options: Any) -> S3EventStore:
    return S3EventStore(
        bucket, "p", endpoint_url=server.endpoint_url, session=server.session(), **options
    )


async def test_the_total_buffer_limit_refuses_before_buffering(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    size = event(0).memory_size  # the budget counts what an envelope holds in memory
    async with new_store(s3_server, bucket, max_buffer_bytes=5 * size) as store:
        for sequence in range(3):
            await store.append("a", 1, event(sequence))
        for sequence in range(3, 5):
            await store.append("b", 1, event(sequence))
        assert store.buffered_bytes == 5 * size
        with pytest.raises(BufferLimitError) as info:
            await store.append("b", 1, event(5))
        assert str(info.value) == (
            f"buffering {size} more bytes would exceed max_buffer_bytes={5 * size} "
            f"({5 * size} bytes are buffered in open turns); the event was not recorded: "
            f"finish or discard open turns first"
        )
        assert isinstance(info.value, EventStoreError)
        assert (info.value.limit, info.value.buffered) == (5 * size, 5 * size)
        # Nothing lost: the refused event is not in the turn, the others are.
        turn = await store.get_turn("b", 1)
        assert turn is not None
        assert turn.events == (event(3), event(4))
        assert store.requests.total == 1  # the GET of that read; appends cost nothing
        # Finishing a turn frees its bytes; the event can be appended now.
        await store.finish_turn("a", 1)
        assert store.buffered_bytes == 2 * size
        await store.append("b", 1, event(5))
        await store.discard_turn("b", 1)
        assert store.buffered_bytes == 0


async def test_a_failed_finish_keeps_the_bytes_accounted(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    size = event(0).memory_size
    async with new_store(s3_server, "no-such-bucket-here", max_buffer_bytes=2 * size) as store:
        await store.append("t", 1, event(0))
        with pytest.raises(EventStoreError):
            await store.finish_turn("t", 1)
        assert store.buffered_bytes == size
        await store.append("t", 1, event(1))
        with pytest.raises(BufferLimitError):
            await store.append("t", 1, event(2))
        assert [i.events for i in store.open_turns()] == [2]
        await store.discard_turn("t", 1)  # else leaving the block tries to persist it


async def test_streamed_turns_count_only_what_they_hold(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    # Small events, very compressible: the turn streams but holds little.
    async with new_store(
        s3_server,
        bucket,
        max_turn_buffer_bytes=64 * 1024,
        max_buffer_bytes=MIN_PART_BYTES,
    ) as store:
        for sequence in range(2000):
            await store.append("t", 1, event(sequence))
        (info,) = store.open_turns()
        assert info.streaming
        assert info.buffered_bytes == sum(event(n).wire_size + 1 for n in range(2000))
        # The uncompressed batch (< 256 KiB) and the compressed tail, not the whole turn.
        assert info.memory_bytes == store.buffered_bytes < 256 * 1024 + 64 * 1024
        await store.finish_turn("t", 1)
        assert store.buffered_bytes == 0
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert turn.events == tuple(event(sequence) for sequence in range(2000))


async def test_open_turns_reports_sizes_and_ages(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async with new_store(s3_server, bucket) as store:
        before = time.time()
        await store.append("t", 1, event(0))
        await store.append("u", 2, event(1, "y"))
        await store.append("t", 1, event(2))
        after = time.time()
        infos = store.open_turns()
        assert [(i.thread_id, i.turn, i.events) for i in infos] == [("t", 1, 2), ("u", 2, 1)]
        first = infos[0]
        assert first.buffered_bytes == event(0).wire_size + event(2).wire_size + 2
        assert first.memory_bytes == event(0).memory_size + event(2).memory_size
        assert not first.streaming
        assert before <= first.opened_at <= first.last_append_at <= after
        assert first.last_append_at >= infos[1].last_append_at >= infos[1].opened_at
        assert first.idle_seconds >= 0
        assert store.buffered_bytes == sum(i.memory_bytes for i in infos)


def test_buffer_limits_are_validated() -> None:
    from s3_eventstore import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"^max_buffer_bytes must be an int >= 1, not 0$"):
        S3EventStore("b-1", max_buffer_bytes=0)
