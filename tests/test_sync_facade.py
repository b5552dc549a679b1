"""The sync facade: one async store on a private loop thread, driven from many threads and loops."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import (
    AgentEventEnvelope,
    EventStore,
    InMemoryEventStore,
    InvalidThreadIdError,
    S3EventStore,
    StoredTurnEvents,
    SyncFacadeError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)
from s3_eventstore.sync import LoopBoundEventStore, LoopThread, SyncEventStore

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server


def envelope(sequence: int, text: str = "x") -> AgentEventEnvelope:
    return AgentEventEnvelope.create("text", {"message_id": "m", "text": text}, sequence=sequence)


class LoopRecordingStore(InMemoryEventStore):
    """Records the thread and loop every call ran on (the facade must use only one)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, int]] = set()

    def _note(self) -> None:
        self.seen.add((threading.get_ident(), id(asyncio.get_running_loop())))

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        self._note()
        await asyncio.sleep(0)  # let other calls interleave on the loop
        await super().append(thread_id, turn, envelope)

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        self._note()
        await super().finish_turn(thread_id, turn)


def test_round_trip_and_every_method() -> None:
    with SyncEventStore(InMemoryEventStore()) as store:
        store.append("t", 1, envelope(0))
        store.append("t", 1, envelope(1))
        store.finish_turn("t", 1)
        store.append("t", 2, envelope(0))
        first = store.get_turn("t", 1)
        assert isinstance(first, StoredTurnEvents)
        assert first.finished
        assert first.events == (envelope_at(store, 0), envelope_at(store, 1))
        assert [t.turn for t in store.get_turns("t")] == [1, 2]
        assert [t.finished for t in store.get_turns("t")] == [True, False]
        assert store.event_count("t") == 3
        assert len(store.get_events("t")) == 3
        assert store.get_events_since("t", 2) == store.get_events("t")[2:]
        assert store.get_turn("t", 9) is None
        store.clear("t")
        assert store.get_turns("t") == []


def envelope_at(store: SyncEventStore, index: int) -> AgentEventEnvelope:
    return store.get_events("t")[index]


def test_many_threads_share_one_store_and_one_loop() -> None:
    inner = LoopRecordingStore()
    with SyncEventStore(inner) as store:

        def worker(n: int) -> None:
            thread = f"thread-{n % 4}"
            for i in range(25):
                store.append(thread, n, envelope(i, f"{n}-{i}"))
            store.finish_turn(thread, n)

        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(worker, range(32)))

        for k in range(4):
            turns = store.get_turns(f"thread-{k}")
            assert [t.turn for t in turns] == list(range(k, 32, 4))
            for turn in turns:
                assert turn.finished
                texts = [e.fields["text"] for e in turn.events]
                assert texts == [f"{turn.turn}-{i}" for i in range(25)]  # append order kept
        assert len({loop for _, loop in inner.seen}) == 1
        assert {ident for ident, _ in inner.seen} == {store.loop_thread._thread.ident}


def test_concurrent_appends_to_one_turn_all_survive() -> None:
    with SyncEventStore(InMemoryEventStore()) as store:
        with ThreadPoolExecutor(max_workers=12) as pool:
            list(pool.map(lambda i: store.append("t", 1, envelope(i, str(i))), range(300)))
        store.finish_turn("t", 1)
        texts = sorted(int(e.fields["text"]) for e in store.get_events("t"))
        assert texts == list(range(300))


def test_exceptions_keep_type_attributes_and_cause() -> None:
    with SyncEventStore(InMemoryEventStore()) as store:
        store.finish_turn("t", 1)
        with pytest.raises(TurnAlreadyFinishedError) as info:
            store.finish_turn("t", 1)
        assert (info.value.thread_id, info.value.turn) == ("t", 1)
        with pytest.raises(TurnFinishedError, match="cannot append to finished turn 1"):
            store.append("t", 1, envelope(0))
        with pytest.raises(InvalidThreadIdError):
            store.get_turns("")

        class Boom(Exception):
            pass

        def lookup() -> None:
            _ = {}["inner"]

        async def fails() -> None:
            try:
                lookup()
            except KeyError as err:
                raise Boom("outer") from err

        with pytest.raises(Boom) as boom:
            store.call(fails)
        assert isinstance(boom.value.__cause__, KeyError)


def test_called_from_inside_a_running_loop() -> None:
    """A sync hook inside an async framework: blocks that loop's thread, still works."""
    with SyncEventStore(InMemoryEventStore()) as store:

        async def framework() -> int:
            store.append("t", 1, envelope(0))  # blocking call on a running loop
            store.finish_turn("t", 1)
            return store.event_count("t")

        assert asyncio.run(framework()) == 1


def test_called_from_its_own_loop_thread_raises_instead_of_deadlocking() -> None:
    with SyncEventStore(InMemoryEventStore()) as store:

        async def on_the_loop() -> None:
            store.append("t", 1, envelope(0))

        with pytest.raises(SyncFacadeError, match="deadlock"):
            store.loop_thread.run(on_the_loop())
        assert store.get_turns("t") == []  # nothing ran, and the facade still works


def test_close_is_idempotent_and_later_calls_fail_clearly() -> None:
    closed: list[bool] = []

    class Closing(InMemoryEventStore):
        async def close(self) -> None:
            closed.append(asyncio.get_running_loop() is not None)

    store = SyncEventStore(Closing())
    loop_thread = store.loop_thread
    store.append("t", 1, envelope(0))
    store.close()
    store.close()
    assert closed == [True]  # the store's own close ran once, on its loop
    assert loop_thread.closed
    assert not loop_thread._thread.is_alive()
    with pytest.raises(SyncFacadeError, match="closed"):
        store.append("t", 1, envelope(1))
    with pytest.raises(SyncFacadeError):
        store.get_turns("t")


def test_a_shared_loop_thread_outlives_its_facades() -> None:
    with LoopThread() as loop_thread:
        first = SyncEventStore(InMemoryEventStore(), loop_thread)
        second = SyncEventStore(InMemoryEventStore(), loop_thread)
        first.close()
        with pytest.raises(SyncFacadeError):
            first.get_turns("t")
        second.append("t", 1, envelope(0))
        assert second.event_count("t") == 1
    assert loop_thread.closed


def test_timeout_cancels_the_call_on_the_loop() -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with LoopThread() as loop_thread:
        with pytest.raises(TimeoutError):
            loop_thread.run(slow(), timeout=0.2)
        assert started.is_set()
        assert cancelled.wait(10)


def test_rejects_what_is_not_a_store() -> None:
    with pytest.raises(TypeError):
        SyncEventStore(object())  # type: ignore[arg-type]


def test_atexit_closes_open_facades_and_their_stores() -> None:
    code = """
import asyncio
from s3_eventstore import InMemoryEventStore
from s3_eventstore.sync import SyncEventStore

class Closing(InMemoryEventStore):
    async def close(self):
        print("store closed on", "loop" if asyncio.get_running_loop() else "?", flush=True)

facade = SyncEventStore(Closing())
facade.get_turns("t")
print("exiting", flush=True)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == ["exiting", "store closed on loop"]


async def test_loop_bound_store_from_many_event_loops(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """One S3 store (one aiobotocore client) shared by code on several loops and threads."""
    s3 = S3EventStore(
        bucket, "archive", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    )
    shared = LoopBoundEventStore(s3)
    assert isinstance(shared, EventStore)

    def own_loop(n: int) -> int:
        async def work() -> int:
            for i in range(3):
                await shared.append("t", n, envelope(i))
            await shared.finish_turn("t", n)
            return len((await shared.get_turn("t", n)).events)  # type: ignore[union-attr]

        return asyncio.run(work())  # a new loop in each thread, as Runner.run_sync does

    counts = await asyncio.gather(*(asyncio.to_thread(own_loop, n) for n in range(1, 7)))
    assert counts == [3] * 6
    assert [t.turn for t in await shared.get_turns("t")] == [1, 2, 3, 4, 5, 6]
    await shared.aclose()
    assert s3.client is None  # the store's close ran on its loop
    with pytest.raises(SyncFacadeError):
        await shared.get_turns("t")


async def test_loop_bound_cancellation_reaches_the_loop_thread() -> None:
    cancelled = threading.Event()

    class Slow(InMemoryEventStore):
        async def get_turns(self, thread_id: str) -> Any:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    shared = LoopBoundEventStore(Slow())
    task = asyncio.create_task(shared.get_turns("t"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cancelled.wait, 10)
    await shared.aclose()


def test_closing_under_a_running_call_is_a_clear_error() -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    loop_thread = LoopThread()
    errors: list[BaseException] = []

    def caller() -> None:
        try:
            loop_thread.run(forever())
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            errors.append(err)

    waiting = threading.Thread(target=caller)
    waiting.start()
    assert started.wait(10)
    loop_thread.close()
    waiting.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], SyncFacadeError)


async def test_closing_under_an_awaited_call_is_a_clear_error() -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    loop_thread = LoopThread()
    task = asyncio.create_task(loop_thread.run_async(forever()))
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.to_thread(loop_thread.close)
    with pytest.raises(SyncFacadeError, match="closed while the call ran"):
        await task


async def test_loop_bound_store_passes_discard_through(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    s3 = S3EventStore(
        bucket, "archive", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    )
    shared = LoopBoundEventStore(s3)
    event = envelope(0)
    await shared.append("t", 1, event)
    assert s3.buffered_bytes > 0
    assert await shared.discard_turn("t", 1) == (event,)
    assert s3.buffered_bytes == 0
    assert (
        await LoopBoundEventStore(InMemoryEventStore(), shared.loop_thread).discard_turn("t", 1)
        == ()
    )
    await shared.aclose()


# --- flush and close(flush=...) through the facades (issue 11) ------------------------------


def _s3(s3_server: EmbeddedS3Server, bucket: str) -> S3EventStore:
    return S3EventStore(
        bucket, "archive", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    )


def _fresh_turn(s3_server: EmbeddedS3Server, bucket: str, turn: int) -> StoredTurnEvents | None:
    with SyncEventStore(_s3(s3_server, bucket)) as reader:
        return reader.get_turn("t", turn)


def test_sync_flush_and_close_persist_open_turns(s3_server: EmbeddedS3Server, bucket: str) -> None:
    store = SyncEventStore(_s3(s3_server, bucket))
    first = envelope(0, "a")
    store.append("t", 1, first)
    assert _fresh_turn(s3_server, bucket, 1) is None, "append alone persists nothing"
    store.flush()
    assert _fresh_turn(s3_server, bucket, 1) == StoredTurnEvents(1, (first,), False)
    store.append("t", 1, envelope(1, "b"))
    store.close()  # flushes by default, as the async store's close
    turn = _fresh_turn(s3_server, bucket, 1)
    assert turn is not None
    assert [event.fields["text"] for event in turn.events] == ["a", "b"]
    with pytest.raises(SyncFacadeError, match="closed"):
        store.flush()


def test_sync_close_without_flush_drops_open_turns(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    store = SyncEventStore(_s3(s3_server, bucket))
    store.append("t", 1, envelope(0))
    store.close(flush=False)
    assert store.loop_thread.closed
    assert _fresh_turn(s3_server, bucket, 1) is None


def test_a_close_that_hands_back_a_refused_turn_leaves_the_facade_open_for_the_rest(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    store = SyncEventStore(_s3(s3_server, bucket))
    for turn in (1, 2, 3):
        store.append("t", turn, envelope(turn, f"mine{turn}"))
    with SyncEventStore(_s3(s3_server, bucket)) as other:
        for turn in (1, 3):
            other.append("t", turn, envelope(9, f"other{turn}"))
            other.finish_turn("t", turn)
    handed_back: dict[int, list[str]] = {}
    for _ in range(2):  # one refused turn per call; the facade stays open in between
        with pytest.raises(TurnAlreadyFinishedError) as info:
            store.close()
        assert not store.loop_thread.closed
        handed_back[info.value.turn] = [e.fields["text"] for e in info.value.unwritten_events]
    store.close()
    assert store.loop_thread.closed
    assert handed_back == {1: ["mine1"], 3: ["mine3"]}
    turn = _fresh_turn(s3_server, bucket, 2)
    assert turn is not None
    assert [event.fields["text"] for event in turn.events] == ["mine2"]


async def test_loop_bound_aclose_flushes_or_not(s3_server: EmbeddedS3Server, bucket: str) -> None:
    for flush in (True, False):
        shared = LoopBoundEventStore(_s3(s3_server, bucket))
        await shared.append("t", 1 if flush else 2, envelope(0, f"flush={flush}"))
        await shared.aclose(flush=flush)
        assert shared.loop_thread.closed
    kept = await asyncio.to_thread(_fresh_turn, s3_server, bucket, 1)
    assert kept is not None
    assert [event.fields["text"] for event in kept.events] == ["flush=True"]
    assert await asyncio.to_thread(_fresh_turn, s3_server, bucket, 2) is None
