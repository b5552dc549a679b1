"""EventStoreConformance: the agent-sdk EventStore contract as one reusable test class.

Every implementation runs this suite unchanged. A subclass named ``Test...`` provides
an async ``store`` fixture yielding a fresh, empty store, and a ``reopen`` fixture: a
factory of *fresh stores on the same backend* (what another process, or the next run of a
serverless worker, opens), used by the suspension rules; the suite does the rest.
The agent-sdk vectors are loaded by :func:`load_agent_sdk_vectors` (``$AGENT_SDK_FIXTURES``
or the repository's ``tests/fixtures/agent-sdk``); missing vectors fail the vector tests,
they never skip. Outside this repository, set ``AGENT_SDK_FIXTURES`` or override the
``vectors`` fixture.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    InvalidEnvelopeError,
    InvalidInputError,
    InvalidThreadIdError,
    InvalidTurnError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)
from s3_eventstore.identifiers import TURN_MAX, check_thread_id
from s3_eventstore.store import EventStore
from s3_eventstore.testing.suspension import SuspensionRules
from s3_eventstore.testing.vectors import AgentSdkVectors, load_agent_sdk_vectors

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


__all__ = ["EventStoreConformance", "HookedEventStore", "make_event"]

INVALID_THREAD_IDS: list[Any] = ["", None, 7, b"thread", ["t"], "bad\ud800surrogate"]
INVALID_TURNS: list[Any] = [-1, TURN_MAX + 1, True, False, 1.0, "1", None]
ODD_THREAD_IDS = [
    "a/b",
    "a/",
    "/a",
    ".",
    "..",
    "../escape",
    "a/../../b",
    "%2F",
    "thread=x/shard=00",
    "tab\tnew\nline\x00nul",
    "espaço ünïcødé 会话 🧵",
    "A",
    "a",
    "a ",
    " a",
    "x" * 300,
]


def make_event(
    sequence: int = 0, event_type: str = "text_delta", **fields: Any
) -> AgentEventEnvelope:
    """A valid envelope with a fresh id, for tests that do not care about content."""
    return AgentEventEnvelope.create(
        event_type, fields or {"delta": f"d{sequence}"}, sequence=sequence
    )


def as_json(turns: list[StoredTurnEvents]) -> list[dict[str, Any]]:
    """``get_turns`` as the agent-sdk JSON value."""
    return [turn.to_dict() for turn in turns]


class EventStoreConformance(SuspensionRules):
    """The contract. Subclasses provide an async ``store`` fixture yielding an empty store,
    and a ``reopen`` fixture (see :class:`SuspensionRules`)."""

    # --- hooks ------------------------------------------------------------------------

    @pytest.fixture
    def vectors(self) -> AgentSdkVectors:
        """The agent-sdk fixtures; override to point elsewhere. Missing ones are an error."""
        try:
            return load_agent_sdk_vectors()
        except FileNotFoundError as err:
            pytest.fail(str(err))

    # --- the agent-sdk vectors --------------------------------------------------------

    async def test_replay_matches_expected_get_turns(
        self, store: EventStore, vectors: AgentSdkVectors
    ) -> None:
        for step in vectors.replay():
            await store.append(step.thread_id, step.turn, step.envelope)
            if step.finish_turn_after:
                await store.finish_turn(step.thread_id, step.turn)
        expected = vectors.expected_get_turns()
        assert expected, "expected_get_turns.json is empty"
        for thread_id, turns in expected.items():
            assert as_json(await store.get_turns(thread_id)) == turns, thread_id

    async def test_replay_round_trips_every_envelope_byte_for_byte(
        self, store: EventStore, vectors: AgentSdkVectors
    ) -> None:
        steps = vectors.replay()
        for step in steps:
            await store.append(step.thread_id, step.turn, step.envelope)
            if step.finish_turn_after:
                await store.finish_turn(step.thread_id, step.turn)
        stored: list[bytes] = []
        for thread_id in dict.fromkeys(step.thread_id for step in steps):
            stored.extend(e.to_json() for e in await store.get_events(thread_id))
        assert sorted(stored) == sorted(vectors.lines())

    async def test_stored_turns_vector(self, store: EventStore, vectors: AgentSdkVectors) -> None:
        expected = vectors.stored_turns()
        thread_id = expected[0]["events"][0]["thread_id"]
        for turn in expected:
            for event in turn["events"]:
                await store.append(thread_id, turn["turn"], AgentEventEnvelope.from_dict(event))
            if turn["finished"]:
                await store.finish_turn(thread_id, turn["turn"])
        assert as_json(await store.get_turns(thread_id)) == expected

    async def test_legacy_and_unknown_shapes_are_kept_verbatim(
        self, store: EventStore, vectors: AgentSdkVectors
    ) -> None:
        lines = vectors.lines("legacy_envelopes.input.jsonl")
        future = b'{"event_id":"00000000-0000-7000-8000-000000000001","sequence":18446744073709551615,"timestamp":"2030-01-01T00:00:00.123456789+05:30","type":"hologram_projected","beam":{"z":1,"a":[1.5e300,-0.0]},"nested":{"b":null}}'
        lines.append(future)
        for line in lines:
            await store.append("legacy", 3, AgentEventEnvelope.from_json(line))
        await store.finish_turn("legacy", 3)
        turn = await store.get_turn("legacy", 3)
        assert turn is not None
        assert [e.to_json() for e in turn.events] == lines
        assert turn.events[-1].sequence == 2**64 - 1
        assert turn.events[-1].timestamp == "2030-01-01T00:00:00.123456789+05:30"

    # --- existence and ordering -------------------------------------------------------

    async def test_unknown_thread_and_turn(self, store: EventStore) -> None:
        assert await store.get_turn("nobody", 1) is None
        assert await store.get_turns("nobody") == []
        assert await store.get_events("nobody") == []
        assert await store.event_count("nobody") == 0
        assert await store.get_events_since("nobody", 0) == []
        await store.append("somebody", 1, make_event())
        assert await store.get_turn("somebody", 2) is None

    async def test_open_turn_is_visible_unfinished_and_grows(self, store: EventStore) -> None:
        first, second = make_event(0), make_event(1)
        await store.append("t", 4, first)
        assert await store.get_turn("t", 4) == StoredTurnEvents(4, (first,), False)
        await store.finish_turn("t", 3)  # other turns come and go meanwhile
        await store.append("t", 4, second)
        assert await store.get_turn("t", 4) == StoredTurnEvents(4, (first, second), False)
        await store.finish_turn("t", 4)
        assert await store.get_turn("t", 4) == StoredTurnEvents(4, (first, second), True)

    async def test_finish_without_events_yields_empty_finished_turn(
        self, store: EventStore
    ) -> None:
        await store.finish_turn("t", 9)
        assert await store.get_turn("t", 9) == StoredTurnEvents(9, (), True)
        assert await store.get_turns("t") == [StoredTurnEvents(9, (), True)]
        assert await store.event_count("t") == 0

    async def test_turns_in_numeric_order_whatever_the_write_order(self, store: EventStore) -> None:
        order = [10, 2, TURN_MAX, 0, 1, 100, 11]
        events = {turn: make_event(turn % 7) for turn in order}
        for turn in order:
            await store.append("t", turn, events[turn])
            if turn != 11:
                await store.finish_turn("t", turn)
        turns = await store.get_turns("t")
        assert [t.turn for t in turns] == sorted(order)
        assert [t.finished for t in turns] == [t.turn != 11 for t in turns]
        assert await store.get_events("t") == [events[turn] for turn in sorted(order)]

    async def test_events_are_turn_major_never_by_sequence_or_timestamp(
        self, store: EventStore
    ) -> None:
        late = make_event(5, timestamp_marker="late")
        early = AgentEventEnvelope.create(
            "text_delta", {"delta": "x"}, sequence=0, timestamp="2000-01-01T00:00:00Z"
        )
        await store.append("t", 1, late)
        await store.append("t", 1, early)  # lower sequence, older timestamp, appended later
        await store.append("t", 0, make_event(9))
        await store.finish_turn("t", 1)
        events = await store.get_events("t")
        assert events[1:] == [late, early]

    async def test_event_count_and_get_events_since(self, store: EventStore) -> None:
        layout = {1: 3, 2: 0, 3: 4, 5: 2}  # turn -> events; turn 5 stays open
        for turn, count in layout.items():
            for sequence in range(count):
                await store.append("t", turn, make_event(sequence))
            if turn != 5:
                await store.finish_turn("t", turn)
        everything = await store.get_events("t")
        assert await store.event_count("t") == len(everything) == 9
        for offset in range(12):
            assert await store.get_events_since("t", offset) == everything[offset:], offset
        bad: Any
        for bad in (-1, 1.5, None, True):
            with pytest.raises(InvalidInputError):
                await store.get_events_since("t", bad)

    # --- the turn state machine -------------------------------------------------------

    async def test_append_to_finished_turn_is_refused(self, store: EventStore) -> None:
        await store.append("t", 7, make_event(0))
        await store.finish_turn("t", 7)
        with pytest.raises(TurnFinishedError, match="cannot append to finished turn 7") as info:
            await store.append("t", 7, make_event(1))
        assert (info.value.thread_id, info.value.turn) == ("t", 7)
        turn = await store.get_turn("t", 7)
        assert turn is not None
        assert len(turn.events) == 1

    async def test_second_finish_is_refused(self, store: EventStore) -> None:
        await store.finish_turn("t", 0)
        with pytest.raises(TurnAlreadyFinishedError, match="turn 0 is already finished"):
            await store.finish_turn("t", 0)
        await store.append("t", 1, make_event())
        await store.finish_turn("t", 1)
        with pytest.raises(TurnAlreadyFinishedError, match="turn 1 is already finished"):
            await store.finish_turn("t", 1)

    async def test_concurrent_appends_to_one_turn_all_land_in_order(
        self, store: EventStore
    ) -> None:
        events = [make_event(i) for i in range(200)]
        await asyncio.gather(*(store.append("t", 1, event) for event in events))
        await store.finish_turn("t", 1)
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert list(turn.events) == events

    async def test_concurrent_finishes_one_wins(self, store: EventStore) -> None:
        await store.append("t", 1, make_event())
        results = await asyncio.gather(
            store.finish_turn("t", 1), store.finish_turn("t", 1), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == [
            "NoneType",
            "TurnAlreadyFinishedError",
        ]

    async def test_append_racing_finish_lands_or_is_refused(self, store: EventStore) -> None:
        await store.append("t", 1, make_event(0))
        racer = make_event(1)
        finish = asyncio.ensure_future(store.finish_turn("t", 1))
        await asyncio.sleep(0)
        try:
            await store.append("t", 1, racer)
            appended = True
        except TurnFinishedError:
            appended = False
        await finish
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert turn.finished
        assert (racer in turn.events) == appended

    # --- isolation and clear ----------------------------------------------------------

    async def test_threads_are_isolated_by_exact_id(self, store: EventStore) -> None:
        for index, thread_id in enumerate(ODD_THREAD_IDS):
            await store.append(thread_id, 1, make_event(index))
            await store.finish_turn(thread_id, 1)
            await store.append(thread_id, 2, make_event(index))
        for index, thread_id in enumerate(ODD_THREAD_IDS):
            turns = await store.get_turns(thread_id)
            assert [t.turn for t in turns] == [1, 2], thread_id
            assert all(e.sequence == index for t in turns for e in t.events), thread_id

    async def test_clear_removes_open_and_finished_turns(self, store: EventStore) -> None:
        for turn in range(3):
            await store.append("t", turn, make_event(turn))
            await store.finish_turn("t", turn)
        await store.append("t", 3, make_event(3))
        await store.append("neighbour", 1, make_event())
        await store.finish_turn("neighbour", 1)
        await store.clear("t")
        assert await store.get_turns("t") == []
        assert await store.get_turn("t", 1) is None
        assert await store.event_count("t") == 0
        assert len(await store.get_turns("neighbour")) == 1
        await store.clear("t")
        await store.clear("never-seen")
        await store.append("t", 1, make_event())  # the thread starts over
        await store.finish_turn("t", 1)
        assert [t.turn for t in await store.get_turns("t")] == [1]

    # --- bad input --------------------------------------------------------------------

    @pytest.mark.parametrize("thread_id", INVALID_THREAD_IDS)
    async def test_invalid_thread_ids_are_refused(self, store: EventStore, thread_id: Any) -> None:
        event = make_event()
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.append(thread_id, 1, event),
            lambda: store.finish_turn(thread_id, 1),
            lambda: store.get_turn(thread_id, 1),
            lambda: store.get_turns(thread_id),
            lambda: store.get_events(thread_id),
            lambda: store.event_count(thread_id),
            lambda: store.get_events_since(thread_id, 0),
            lambda: store.clear(thread_id),
        ]
        for call in calls:
            with pytest.raises(InvalidThreadIdError):
                await call()

    @pytest.mark.parametrize("turn", INVALID_TURNS)
    async def test_invalid_turns_are_refused(self, store: EventStore, turn: Any) -> None:
        await store.append("t", 1, make_event())
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.append("t", turn, make_event()),
            lambda: store.finish_turn("t", turn),
            lambda: store.get_turn("t", turn),
        ]
        for call in calls:
            with pytest.raises(InvalidTurnError):
                await call()
        turns = await store.get_turns("t")
        assert [(t.turn, len(t.events), t.finished) for t in turns] == [(1, 1, False)]

    @pytest.mark.parametrize(
        "envelope",
        [
            {"event_id": str(uuid.uuid4()), "sequence": 0, "timestamp": "2025-01-01T00:00:00Z"},
            b'{"event_id":"x"}',
            "not an envelope",
            None,
        ],
    )
    async def test_non_envelopes_are_refused(self, store: EventStore, envelope: Any) -> None:
        with pytest.raises(InvalidEnvelopeError):
            await store.append("t", 1, envelope)
        assert await store.get_turns("t") == []


class HookedEventStore(EventStore):
    """Wraps a store and runs a hook after every ``finish_turn`` and before every read.

    Lets the contract suite run unchanged against a store in some maintenance state: a
    hook that compacts the thread (fully, or stopping at a crash step) shows that every
    contract rule holds before, during and after that maintenance. The hook receives the
    thread id; it must not change what the thread holds, only how it is stored.
    """

    def __init__(
        self,
        inner: EventStore,
        *,
        after_finish: Callable[[str], Awaitable[object]] | None = None,
        before_read: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.inner = inner
        self.after_finish = after_finish
        """The hook run after every ``finish_turn``."""
        self.before_read = before_read
        """The hook run before every read."""

    async def _read_hook(self, thread_id: str) -> None:
        if self.before_read is not None and _valid_thread_id(thread_id):
            await self.before_read(thread_id)

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """As the inner store."""
        await self.inner.append(thread_id, turn, envelope)

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """As the inner store, then the ``after_finish`` hook (also after a refused finish:
        a racing writer's finish is maintenance's business too)."""
        try:
            await self.inner.finish_turn(thread_id, turn)
        finally:
            if self.after_finish is not None and _valid_thread_id(thread_id):
                await self.after_finish(thread_id)

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """The ``before_read`` hook, then as the inner store."""
        await self._read_hook(thread_id)
        return await self.inner.get_turn(thread_id, turn)

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """The ``before_read`` hook, then as the inner store."""
        await self._read_hook(thread_id)
        return await self.inner.get_turns(thread_id)

    async def event_count(self, thread_id: str) -> int:
        """The ``before_read`` hook, then as the inner store."""
        await self._read_hook(thread_id)
        return await self.inner.event_count(thread_id)

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """The ``before_read`` hook, then as the inner store."""
        await self._read_hook(thread_id)
        return await self.inner.get_events_since(thread_id, offset)

    async def clear(self, thread_id: str) -> None:
        """As the inner store."""
        await self.inner.clear(thread_id)

    async def flush(self) -> None:
        """As the inner store."""
        await self.inner.flush()

    async def close(self, *, flush: bool = True) -> None:
        """As the inner store, when it has a ``close``."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close(flush=flush)


def _valid_thread_id(thread_id: object) -> bool:
    """Hooks only see thread ids the store would accept (invalid ones must reach the store)."""
    try:
        check_thread_id(thread_id)
    except InvalidThreadIdError:
        return False
    return True
