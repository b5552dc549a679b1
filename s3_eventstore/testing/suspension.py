"""The suspension rules of the contract (agent-sdk rules 27-28; docs/FORMAT.md section
10): open turns outlive the store that opened them.

:class:`SuspensionRules` is mixed into :class:`~s3_eventstore.testing.EventStoreConformance`,
so every store runs it unchanged. It needs a ``reopen`` fixture: a factory of *fresh
stores on the same backend* (what another process, or the next run of a serverless
worker, opens).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    InvalidEnvelopeError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s3_eventstore.store import EventStore

__all__ = ["SuspensionRules"]


def _event(sequence: int = 0, event_type: str = "text_delta", **fields: Any) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(
        event_type, fields or {"delta": f"d{sequence}"}, sequence=sequence
    )


async def _close(store: EventStore, **options: bool) -> None:
    """``await store.aclose(**options)`` when the store has one (a store whose ``close``
    is blocking, such as the sync facade's ``LoopBoundEventStore``), else ``await
    store.close(**options)``: stores that hold resources have one (the contract does not
    require it; ``flush`` persists)."""
    close = getattr(store, "aclose", None) or getattr(store, "close", None)
    if close is not None:
        result = close(**options)
        if inspect.isawaitable(result):
            await result


class SuspensionRules:
    """Flush, close, and a fresh store that continues: the rules every store keeps."""

    @pytest.fixture
    def reopen(self) -> Callable[[], Awaitable[EventStore]]:
        """A factory of fresh stores on the same backend as ``store`` (another process).

        Override it: the suspension rules cannot run without it.
        """

        async def missing() -> EventStore:
            pytest.fail("the conformance subclass must provide a `reopen` fixture")

        return missing

    # --- suspension: open turns that outlive the store (agent-sdk rules 27-28) ---------

    async def test_flushed_open_turn_is_continued_by_a_fresh_store(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        first = [_event(i) for i in range(3)]
        for event in first:
            await store.append("t", 3, event)
        await store.flush()
        other = await reopen()
        assert await other.get_turn("t", 3) == StoredTurnEvents(3, tuple(first), False)
        second = [_event(10 + i) for i in range(2)]
        for event in second:
            await other.append("t", 3, event)
        await other.finish_turn("t", 3)
        expected = StoredTurnEvents(3, (*first, *second), True)
        for reader in (other, store, await reopen()):
            assert await reader.get_turn("t", 3) == expected
            assert await reader.get_turns("t") == [expected]

    async def test_close_persists_open_turns_by_default(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        worker = await reopen()
        event = _event(0, "budget_exceeded", thread_id="t")
        await worker.append("t", 5, event)  # a marker under an unfinished turn + 1 (rule 28)
        await _close(worker)
        assert await store.get_turn("t", 5) == StoredTurnEvents(5, (event,), False)
        start = _event(1, "start", thread_id="t", turn=5)
        await store.append("t", 5, start)  # the rerun re-enters it, start after the marker
        await store.finish_turn("t", 5)
        assert await store.get_events("t") == [event, start]

    async def test_a_turn_suspended_many_times_is_one_turn_in_append_order(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        events = [_event(i) for i in range(8)]
        await store.append("t", 1, _event(99))
        await store.finish_turn("t", 1)
        for run in range(4):
            worker = await reopen()
            await worker.append("t", 2, events[2 * run])
            await worker.flush()
            await worker.append("t", 2, events[2 * run + 1])
            await _close(worker)
        await (await reopen()).finish_turn("t", 2)
        reader = await reopen()
        turns = await reader.get_turns("t")
        assert [(t.turn, t.finished) for t in turns] == [(1, True), (2, True)]
        assert list(turns[1].events) == events
        assert await reader.event_count("t") == 9
        everything = await reader.get_events("t")
        for offset in range(11):
            assert await reader.get_events_since("t", offset) == everything[offset:]

    async def test_persisted_open_turns_are_visible_everywhere_in_turn_order(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        worker = await reopen()
        layout = {1: (2, True), 2: (3, False), 3: (0, True), 4: (1, False), 6: (2, True)}
        appended: dict[int, list[AgentEventEnvelope]] = {}
        for turn, (count, finished) in layout.items():
            appended[turn] = [_event(turn * 10 + i) for i in range(count)]
            for event in appended[turn]:
                await worker.append("t", turn, event)
            if finished:
                await worker.finish_turn("t", turn)
        await worker.flush()
        expected = [
            StoredTurnEvents(turn, tuple(appended[turn]), finished)
            for turn, (_, finished) in layout.items()
        ]
        everything = [event for turn in layout for event in appended[turn]]
        for reader in (store, worker):
            assert await reader.get_turns("t") == expected
            assert await reader.get_turn("t", 2) == expected[1]
            assert await reader.get_events("t") == everything
            assert await reader.event_count("t") == len(everything)
            for offset in range(len(everything) + 2):
                assert await reader.get_events_since("t", offset) == everything[offset:]

    async def test_a_turn_finished_elsewhere_refuses_the_stale_writer(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        stale = await reopen()
        persisted, late = _event(0), _event(1)
        await stale.append("t", 4, persisted)
        await stale.flush()
        await store.finish_turn("t", 4)  # another worker finishes the turn
        try:
            await stale.append("t", 4, late)
        except TurnFinishedError:
            refused = True  # a store that knows may refuse at once...
        else:
            refused = False  # ...one that appends without a request learns it at the write
        with pytest.raises(TurnAlreadyFinishedError, match="turn 4 is already finished") as info:
            await stale.finish_turn("t", 4)
        assert info.value.unwritten_events == (() if refused else (late,))
        with pytest.raises(TurnAlreadyFinishedError):
            await store.finish_turn("t", 4)
        for reader in (store, stale, await reopen()):
            assert await reader.get_turn("t", 4) == StoredTurnEvents(4, (persisted,), True)

    async def test_second_finish_of_a_resumed_turn_is_refused_everywhere(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        first = _event(0)
        await store.append("t", 1, first)
        await store.flush()
        finisher = await reopen()
        await finisher.finish_turn("t", 1)
        for writer in (store, finisher, await reopen()):
            with pytest.raises(TurnAlreadyFinishedError, match="turn 1 is already finished"):
                await writer.finish_turn("t", 1)
            with pytest.raises(TurnFinishedError, match="cannot append to finished turn 1"):
                await writer.append("t", 1, _event(1))
        assert await (await reopen()).get_turn("t", 1) == StoredTurnEvents(1, (first,), True)

    async def test_a_clear_elsewhere_resets_what_this_store_knows(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        await store.append("t", 1, _event(0))
        await store.finish_turn("t", 1)
        await (await reopen()).clear("t")
        fresh = _event(1)
        await store.append("t", 1, fresh)  # as on a fresh store: the turn starts over
        await store.finish_turn("t", 1)
        assert await (await reopen()).get_turns("t") == [StoredTurnEvents(1, (fresh,), True)]

    async def test_a_refused_append_creates_no_turn(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        await store.finish_turn("t", 1)
        with pytest.raises(TurnFinishedError):
            await store.append("t", 1, _event())
        bad: Any = {"not": "an envelope"}
        with pytest.raises(InvalidEnvelopeError):
            await store.append("t", 2, bad)
        await store.flush()
        for reader in (store, await reopen()):
            assert await reader.get_turn("t", 2) is None
            assert await reader.get_turns("t") == [StoredTurnEvents(1, (), True)]

    async def test_flush_and_close_are_harmless_when_nothing_is_open(
        self, store: EventStore, reopen: Callable[[], Awaitable[EventStore]]
    ) -> None:
        await store.flush()
        await store.append("t", 1, _event())
        await store.finish_turn("t", 1)
        await store.flush()
        await store.flush()
        worker = await reopen()
        await _close(worker)
        await _close(worker, flush=False)
        assert [t.turn for t in await store.get_turns("t")] == [1]
