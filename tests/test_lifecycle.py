"""Turns that outlive a process (issue 11): each failing input of the issue, and variants.

Suspension and resumption across stores, the barrier through compaction, local state
that must not lie, and what each of these costs in requests. Objects are inspected
behind the store's back where the format matters (docs/FORMAT.md section 11).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest

from s3_eventstore import (
    AgentEventEnvelope,
    BufferLimitError,
    S3EventStore,
    StoredTurnEvents,
    TurnAlreadyFinishedError,
    TurnFinishedError,
    TurnStreamingError,
)
from s3_eventstore.errors import StorageError, UnsafeEndpointError
from s3_eventstore.testing.conformance import make_event
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy
from tests.conftest import all_keys
from tests.test_s3_store import OperationLog, new_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


EVERY_ATTEMPT = 4
"""Faults enough for every attempt of one call: botocore's and aiohttp's own silent retry."""


def events(tag: str, count: int) -> list[AgentEventEnvelope]:
    return [make_event(n, delta=f"{tag}{n}") for n in range(count)]


def deltas(turn: StoredTurnEvents | None) -> list[str]:
    assert turn is not None
    return [event.to_dict()["delta"] for event in turn.events]


async def finish_turns(store: S3EventStore, thread_id: str, turns: list[int]) -> None:
    for turn in turns:
        await store.append(thread_id, turn, make_event(turn, delta=f"{turn}.0"))
        await store.append(thread_id, turn, make_event(turn, delta=f"{turn}.1"))
        await store.finish_turn(thread_id, turn)


@pytest.fixture
def proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    with FaultProxy(
        s3_server.endpoint_url, seed=11, delay_seconds=2.0, serialize_conditional_writes=True
    ) as fault_proxy:
        yield fault_proxy


@pytest.fixture
async def store(s3_server: EmbeddedS3Server, bucket: str) -> AsyncIterator[S3EventStore]:
    async with new_store(s3_server, bucket) as opened:
        yield opened


# --- the inputs ----------------------------------------------------------------


async def test_a_closed_worker_s_open_turn_is_continued_by_the_next_worker(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    worker_a = new_store(s3_server, bucket)
    for event in events("a", 3):
        await worker_a.append("t", 3, event)
    await worker_a.close()
    async with new_store(s3_server, bucket) as fresh:
        assert deltas(await fresh.get_turn("t", 3)) == ["a0", "a1", "a2"]
        assert (await fresh.get_turn("t", 3)).finished is False  # type: ignore[union-attr]
    async with new_store(s3_server, bucket) as worker_b:
        for event in events("b", 2):
            await worker_b.append("t", 3, event)
        await worker_b.finish_turn("t", 3)
    async with new_store(s3_server, bucket) as reader:
        turn = await reader.get_turn("t", 3)
        assert deltas(turn) == ["a0", "a1", "a2", "b0", "b1"]
        assert turn is not None
        assert turn.finished


@pytest.mark.parametrize("with_appends", [False, True])
async def test_a_late_finish_after_compaction_is_refused_and_changes_nothing(
    store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, with_appends: bool
) -> None:
    await finish_turns(store, "t", list(range(1, 11)))
    await store.compact("t")
    before = await store.get_turns("t")
    keys_before = sorted(all_keys(backdoor, bucket))
    late_events = events("late", 2) if with_appends else []
    async with new_store(s3_server, bucket) as late:
        for event in late_events:
            await late.append("t", 5, event)
        with pytest.raises(TurnAlreadyFinishedError, match="turn 5 is already finished") as info:
            await late.finish_turn("t", 5)
        assert info.value.unwritten_events == tuple(late_events)
    assert sorted(all_keys(backdoor, bucket)) == keys_before
    async with new_store(s3_server, bucket) as reader:
        assert await reader.get_turns("t") == before
        everything = await reader.get_events("t")
        assert await reader.event_count("t") == len(everything) == 20
        for offset in range(22):
            assert await reader.get_events_since("t", offset) == everything[offset:]
        report = await reader.compact("t")
        assert report.turns_compacted == 0
        assert (await reader.verify("t")).clean


async def test_overlapping_compactions_and_a_stale_finish_delete_no_acknowledged_write(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy
) -> None:
    async with new_store(s3_server, bucket) as writer:
        await finish_turns(writer, "t", [1, 2, 3, 4])
    async with (
        new_store(s3_server, bucket) as first,
        S3EventStore(
            bucket,
            "archive/v1",
            endpoint_url=proxy.endpoint_url,
            session=s3_server.session(),
            check_endpoint=False,
        ) as second,
        new_store(s3_server, bucket) as stale,
    ):
        gate = proxy.hold_next(
            lambda info: info.operation == "PutObject" and "/seg-" in info.target
        )
        slow = asyncio.ensure_future(second.compact("t"))
        await gate.wait_arrived()  # the second compaction's segment PUT is on its way
        await first.compact("t")
        stale_event = make_event(7, delta="stale")
        await stale.append("t", 2, stale_event)
        with pytest.raises(TurnAlreadyFinishedError) as info:
            await stale.finish_turn("t", 2)  # its key holds a stub: never free again
        assert info.value.unwritten_events == (stale_event,)
        gate.release()
        await slow
    async with new_store(s3_server, bucket) as reader:
        turns = await reader.get_turns("t")
        assert [deltas(turn) for turn in turns] == [[f"{n}.0", f"{n}.1"] for n in (1, 2, 3, 4)]
        assert (await reader.verify("t")).clean


async def test_get_events_since_follows_turn_order_across_segments_with_gaps(
    store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    await finish_turns(store, "t", [*range(1, 5), *range(7, 15), *range(16, 21)])
    await store.compact("t")
    await finish_turns(store, "t", [5, 6])
    await store.compact("t")
    await finish_turns(store, "t", [15, 25])
    await store.compact("t")
    async with new_store(s3_server, bucket) as reader:
        everything = await reader.get_events("t")
        assert [e.to_dict()["delta"] for e in everything[::2]] == [
            f"{n}.0" for n in [*range(1, 21), 25]
        ]
        assert await reader.event_count("t") == len(everything)
        for offset in range(len(everything) + 2):
            assert await reader.get_events_since("t", offset) == everything[offset:], offset


async def test_interleaved_segments_read_in_turn_order_from_a_cold_store_each_time(
    store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    # The variant: segments nested inside another segment's range, and loose turns.
    await finish_turns(store, "t", [1, 10])
    await store.compact("t")
    await finish_turns(store, "t", [3, 4])
    await store.compact("t")
    await finish_turns(store, "t", [2, 5, 11])
    everything = [f"{n}.{i}" for n in (1, 2, 3, 4, 5, 10, 11) for i in (0, 1)]
    for offset in range(len(everything) + 1):
        reader = S3EventStore(bucket, "archive/v1", client=store.client)  # nothing cached
        got = await reader.get_events_since("t", offset)
        assert [e.to_dict()["delta"] for e in got] == everything[offset:], offset


# --- local state that cannot lie -----------------------------------------------------


async def test_after_another_worker_clears_the_thread_this_store_starts_over(
    store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    await finish_turns(store, "t", [1, 2])
    await store.compact("t")
    await store.get_turns("t")  # this store has seen the segment and the finished turns
    async with new_store(s3_server, bucket) as other:
        await other.clear("t")
    await store.append("t", 1, make_event(0, delta="again"))
    await store.finish_turn("t", 2)
    await store.finish_turn("t", 1)
    async with new_store(s3_server, bucket) as reader:
        turns = await reader.get_turns("t")
        assert [(t.turn, deltas(t), t.finished) for t in turns] == [
            (1, ["again"], True),
            (2, [], True),
        ]


async def test_a_refused_append_creates_no_turn(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async with new_store(s3_server, bucket, max_buffer_bytes=1000) as limited:
        big = make_event(0, delta="x" * 2000)
        with pytest.raises(BufferLimitError):
            await limited.append("t", 1, big)
        assert await limited.get_turn("t", 1) is None
        assert await limited.get_turns("t") == []
        await limited.flush()
        assert limited.open_turns() == []
    async with new_store(s3_server, bucket) as reader:
        assert await reader.get_turns("t") == []


async def test_a_finish_whose_response_was_lost_is_recognised_as_this_store_s_own(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy
) -> None:
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=proxy.endpoint_url,
        session=s3_server.session(),
        max_attempts=1,
        check_endpoint=False,
    ) as writer:
        await writer.append("t", 1, make_event(0, delta="kept"))
        proxy.plan_next(FaultKind.DROP_RESPONSE, match="PutObject")
        proxy.plan_next(FaultKind.RESET, count=EVERY_ATTEMPT, match="PutObject")
        with pytest.raises(StorageError):
            await writer.finish_turn("t", 1)  # the PUT landed; the call failed
        proxy.clear_plans()
        with pytest.raises(TurnFinishedError, match="cannot append to finished turn 1"):
            await writer.append("t", 1, make_event(1, delta="refused"))
        await writer.finish_turn("t", 1)  # idempotent: this store's own write
        with pytest.raises(TurnAlreadyFinishedError):
            await writer.finish_turn("t", 1)  # but only once
    async with new_store(s3_server, bucket) as reader:
        turn = await reader.get_turn("t", 1)
        assert deltas(turn) == ["kept"]


async def test_a_flush_whose_response_was_lost_writes_each_event_once(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy
) -> None:
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=proxy.endpoint_url,
        session=s3_server.session(),
        max_attempts=1,
        check_endpoint=False,
    ) as writer:
        await writer.append("t", 1, make_event(0, delta="a"))
        await writer.flush()
        await writer.append("t", 1, make_event(1, delta="b"))
        proxy.plan_next(FaultKind.DROP_RESPONSE, match="PutObject")
        proxy.plan_next(FaultKind.RESET, count=EVERY_ATTEMPT, match="PutObject")
        with pytest.raises(StorageError):
            await writer.flush()
        proxy.clear_plans()
        assert deltas(await writer.get_turn("t", 1)) == ["a", "b"]
        await writer.append("t", 1, make_event(2, delta="c"))
        await writer.flush()
        await writer.finish_turn("t", 1)
    async with new_store(s3_server, bucket) as reader:
        assert deltas(await reader.get_turn("t", 1)) == ["a", "b", "c"]


async def test_automatic_persistence_bounds_what_a_crash_loses(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    worker = new_store(s3_server, bucket, persist_every_events=2)
    for event in events("e", 5):
        await worker.append("t", 1, event)
    # The process dies here: no close, no flush.
    async with new_store(s3_server, bucket) as fresh:
        assert deltas(await fresh.get_turn("t", 1)) == ["e0", "e1", "e2", "e3"]
    await worker.close(flush=False)


async def test_close_without_flush_leaves_nothing_behind(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    worker = new_store(s3_server, bucket)
    await worker.append("t", 1, make_event())
    await worker.close(flush=False)
    assert all_keys(backdoor, bucket, "archive/v1/threads/") == []


async def test_a_streamed_turn_cannot_be_suspended(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with new_store(
        s3_server, bucket, max_turn_buffer_bytes=4096, multipart_part_bytes=5 << 20
    ) as writer:
        for n in range(60):
            await writer.append("t", 1, make_event(n, delta="x" * 100))
        await writer.append("t", 2, make_event(0))
        with pytest.raises(TurnStreamingError, match="cannot be suspended"):
            await writer.flush()
        async with new_store(s3_server, bucket) as fresh:
            assert deltas(await fresh.get_turn("t", 2)) == ["d0"], "other turns are flushed"
        await writer.finish_turn("t", 1)
        assert len((await writer.get_turn("t", 1)).events) == 60  # type: ignore[union-attr]


# --- the format behind the store's back -------------------------------------------------


async def test_open_objects_and_stubs_are_what_format_section_10_says(
    store: S3EventStore, backdoor: Any, bucket: str
) -> None:
    await store.append("t", 1, make_event(0, delta="open"))
    await store.flush()
    key = store.layout.turn_key("t", 1)
    head = backdoor.head_object(Bucket=bucket, Key=key)
    assert "s3es-manifest" not in head["Metadata"], "an older reader must refuse it"
    manifest = json.loads(head["Metadata"]["s3es-open"])
    assert (manifest["format"], manifest["events"]) == (1, 1)
    body = backdoor.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(body) == manifest["stored_bytes"]
    assert body[-24:-16] == struct.pack("<II", 0x184D2A5C, 16), "the write nonce"
    first_etag = head["ETag"]
    await store.flush()  # nothing pending: no write
    assert backdoor.head_object(Bucket=bucket, Key=key)["ETag"] == first_etag
    await store.finish_turn("t", 1)
    finished = json.loads(backdoor.head_object(Bucket=bucket, Key=key)["Metadata"]["s3es-manifest"])
    assert "state" not in finished
    assert finished["format"] == 1
    await finish_turns(store, "t", [2])
    await store.compact("t")
    stub = backdoor.get_object(Bucket=bucket, Key=key)
    assert stub["ContentLength"] == 8
    meta = json.loads(stub["Metadata"]["s3es-stub"])
    assert (meta["kind"], meta["turn"], meta["sha256"]) == ("stub", 1, finished["sha256"])
    assert meta["segment"].startswith("seg-")


# --- costs ---------------------------------------------------------------------------


async def test_request_costs_of_suspension(s3_server: EmbeddedS3Server, bucket: str) -> None:
    async with new_store(s3_server, bucket) as writer:
        log = OperationLog(writer.client or await _client(writer))
        for event in events("a", 50):
            await writer.append("t", 1, event)
        assert log.take() == {}, "append: no request"
        await writer.finish_turn("t", 1)
        assert log.take() == {"PutObject": 1}, "finish_turn when nobody suspends: one PUT"
        for turn in (2, 3):
            await writer.append("t", turn, make_event(turn))
        await writer.flush()
        assert log.take() == {"PutObject": 2}, "a suspension: one PUT per open turn"
        await writer.flush()
        assert log.take() == {}, "nothing pending: nothing written"
        await writer.append("t", 2, make_event(9))
        await writer.finish_turn("t", 2)
        assert log.take() == {"PutObject": 1}, "finishing a turn this store persisted: one PUT"
    async with new_store(s3_server, bucket) as resumer:
        log = OperationLog(await _client(resumer))
        await resumer.append("t", 3, make_event(1))
        await resumer.finish_turn("t", 3)
        assert log.take() == {"PutObject": 2, "GetObject": 1}, "resumed elsewhere: 412, GET, PUT"


async def _client(store: S3EventStore) -> Any:
    await store.open()
    return store.client


async def test_an_endpoint_that_ignores_if_match_is_refused_before_any_write(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy, backdoor: Any
) -> None:
    # The probe's If-Match checks run after its If-None-Match ones: strip only If-Match.
    proxy.plan_next(
        FaultKind.STRIP_CONDITIONS,
        count=10,
        match=lambda info: info.header("If-Match") is not None,
    )
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=proxy.endpoint_url,
        session=s3_server.session(),
        check_endpoint=True,
    ) as writer:
        await writer.append("t", 1, make_event(0))
        with pytest.raises(UnsafeEndpointError, match="does not honour conditional writes"):
            await writer.flush()
        assert writer.endpoint_probe is not None
        assert "If-Match" in writer.endpoint_probe.detail
        assert all_keys(backdoor, bucket, "archive/v1/threads/") == [], "nothing written"
        await writer.discard_turn("t", 1)


# --- a refused turn's events are always handed back (model seed 100099) -------------------


def proxied_store(s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy) -> S3EventStore:
    return S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=proxy.endpoint_url,
        session=s3_server.session(),
        max_attempts=1,
        check_endpoint=False,
    )


def put_of_turn(turn: int) -> Any:
    suffix = f"{turn:020d}.jsonl.zst"
    return lambda info: info.operation == "PutObject" and info.target.split("?")[0].endswith(suffix)


async def finished_elsewhere(s3_server: EmbeddedS3Server, bucket: str, *turns: int) -> None:
    async with new_store(s3_server, bucket) as other:
        for turn in turns:
            await other.append("t", turn, make_event(turn, delta=f"other{turn}"))
            await other.finish_turn("t", turn)


@pytest.mark.parametrize("second_call", ["close", "flush"])
async def test_a_refusal_found_before_a_failed_close_is_raised_by_the_next_call(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy, second_call: str
) -> None:
    # The model's seed 100099: close() persisted turn 1, found turn 2 finished elsewhere
    # (refusal), then failed on turn 3 (StorageError). The retried close returned without
    # error: turn 2's event was dropped and nobody was told.
    writer = proxied_store(s3_server, bucket, proxy)
    for turn in (1, 2, 3):
        await writer.append("t", turn, make_event(turn, delta=f"mine{turn}"))
    await finished_elsewhere(s3_server, bucket, 2)
    proxy.plan_next(FaultKind.INTERNAL_ERROR, count=EVERY_ATTEMPT, match=put_of_turn(3))
    with pytest.raises(StorageError):
        await writer.close()
    proxy.clear_plans()
    with pytest.raises(TurnAlreadyFinishedError, match="turn 2 is already finished") as info:
        await (writer.close() if second_call == "close" else writer.flush())
    assert [event.to_dict()["delta"] for event in info.value.unwritten_events] == ["mine2"]
    await writer.close()  # everything else was persisted or handed back: nothing more
    async with new_store(s3_server, bucket) as reader:
        turns = await reader.get_turns("t")
        assert [(deltas(turn), turn.finished) for turn in turns] == [
            (["mine1"], False),
            (["other2"], True),
            (["mine3"], False),
        ]


async def test_close_hands_back_every_refused_turn_one_call_at_a_time(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    writer = new_store(s3_server, bucket)
    for turn in (1, 2, 3, 4):
        for n in range(2):
            await writer.append("t", turn, make_event(n, delta=f"mine{turn}.{n}"))
    await finished_elsewhere(s3_server, bucket, 2, 4)
    handed_back: dict[int, list[str]] = {}
    for _ in range(2):
        with pytest.raises(TurnAlreadyFinishedError) as info:
            await writer.close()
        handed_back[info.value.turn] = [e.to_dict()["delta"] for e in info.value.unwritten_events]
    await writer.close()
    assert handed_back == {2: ["mine2.0", "mine2.1"], 4: ["mine4.0", "mine4.1"]}
    async with new_store(s3_server, bucket) as reader:
        assert [deltas(turn) for turn in await reader.get_turns("t")] == [
            ["mine1.0", "mine1.1"],
            ["other2"],
            ["mine3.0", "mine3.1"],
            ["other4"],
        ]


async def test_flush_after_a_refusal_persists_the_rest_and_loses_nothing(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with new_store(s3_server, bucket) as writer:
        for turn in (1, 2, 3):
            await writer.append("t", turn, make_event(turn, delta=f"mine{turn}"))
        await finished_elsewhere(s3_server, bucket, 1, 2)
        refused: list[tuple[int, int]] = []
        while True:
            try:
                await writer.flush()
            except TurnAlreadyFinishedError as err:
                refused.append((err.turn, len(err.unwritten_events)))
                continue
            break
        assert refused == [(1, 1), (2, 1)]
        assert deltas(await writer.get_turn("t", 3)) == ["mine3"]
    async with new_store(s3_server, bucket) as reader:
        assert deltas(await reader.get_turn("t", 3)) == ["mine3"]


@pytest.mark.parametrize("call", ["flush", "finish_turn", "close"])
async def test_an_automatic_persist_that_failed_is_refused_with_its_events_later(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy, call: str
) -> None:
    writer = S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=proxy.endpoint_url,
        session=s3_server.session(),
        max_attempts=1,
        check_endpoint=False,
        persist_every_events=2,
    )
    await writer.append("t", 1, make_event(0, delta="a"))
    proxy.plan_next(FaultKind.DROP_RESPONSE, match="PutObject")  # a, b land unheard
    proxy.plan_next(FaultKind.RESET, count=EVERY_ATTEMPT, match="PutObject")
    await writer.append("t", 1, make_event(1, delta="b"))  # best effort: no error
    proxy.clear_plans()
    proxy.plan_next(FaultKind.INTERNAL_ERROR, count=EVERY_ATTEMPT, match="PutObject")
    await writer.append("t", 1, make_event(2, delta="c"))  # its persist fails too
    proxy.clear_plans()
    assert deltas(await writer.get_turn("t", 1)) == ["a", "b", "c"]
    async with new_store(s3_server, bucket) as other:
        await other.append("t", 1, make_event(3, delta="other"))
        await other.finish_turn("t", 1)  # seals a, b (persisted unheard) + other
    calls = {"flush": writer.flush, "finish_turn": lambda: writer.finish_turn("t", 1)}
    with pytest.raises(TurnAlreadyFinishedError) as info:
        await calls.get(call, writer.close)()
    # exactly the event the finished turn lacks: a and b landed (rule L), c did not
    assert [e.to_dict()["delta"] for e in info.value.unwritten_events] == ["c"]
    await writer.close()
    async with new_store(s3_server, bucket) as reader:
        assert deltas(await reader.get_turn("t", 1)) == ["a", "b", "other"]


# --- verify lists orphan segments ----------------------------------------------------------


async def test_verify_lists_a_segment_no_stub_names(
    s3_server: EmbeddedS3Server, bucket: str, proxy: FaultProxy, backdoor: Any
) -> None:
    async with proxied_store(s3_server, bucket, proxy) as store:
        await finish_turns(store, "t", [1, 2, 3])
        await finish_turns(store, "u", [1, 2])
        before = await store.get_turns("t")
        # The compactor dies after its segment PUT: every stub PUT (If-Match) of thread t
        # fails. The plan stays: a stub PUT cancelled by the failure of another may still
        # reach the proxy after the call raised.
        proxy.plan_next(
            FaultKind.INTERNAL_ERROR,
            count=100,
            match=lambda info: (
                info.operation == "PutObject"
                and info.header("If-Match") is not None
                and unquote(info.target).split("?")[0].split("/")[-2] == "thread=t"
            ),
        )
        with pytest.raises(StorageError):
            await store.compact("t", min_turns=1)
        await store.compact("u", min_turns=1)  # a healthy compaction: no orphan
        await asyncio.to_thread(proxy.wait_idle)
    segments = [key for key in all_keys(backdoor, bucket) if "/seg-" in key]
    orphan = [key for key in segments if "thread=t/" in key]
    assert len(orphan) == 1
    stubs = [
        key
        for key in all_keys(backdoor, bucket)
        if "thread=t/" in key
        and "/seg-" not in key
        and backdoor.head_object(Bucket=bucket, Key=key)["ContentLength"] == 8
    ]
    assert stubs == [], "every stub PUT failed"
    async with new_store(s3_server, bucket) as reader:
        assert await reader.get_turns("t") == before, "readers ignore the orphan"
        for report in (await reader.verify("t"), await reader.verify()):
            assert report.clean
            assert report.orphans == tuple(orphan)
        assert (await reader.verify("u")).orphans == ()
        await reader.compact("t", min_turns=1)  # a later compaction adopts the turns
        assert (await reader.verify("t")).orphans == ()
        assert await reader.get_turns("t") == before
