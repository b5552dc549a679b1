"""A reference model of the turn lifecycle across stores, for model-based interleaving tests.

The model is the contract of docs/FORMAT.md section 11 in a few dozen lines: one
*shared* journal (what is persisted: turns with their events and ``finished`` flag) and,
per worker (one store of one process), the events it holds *pending* (appended, not
persisted yet). Its rules:

* ``append`` adds to the worker's pending events (no request); a turn that is finished in
  the journal may be refused at once or learnt about at the next write.
* ``flush`` persists every pending turn in (thread, turn) order: the journal's events
  first, then the worker's, in append order. It stops at a turn finished in the journal:
  that turn is dropped and refused with ``TurnAlreadyFinishedError`` carrying its pending
  events; later turns stay pending for the next flush. ``close`` flushes until every turn
  is persisted or refused and reports the first refusal; the others are *queued*, never
  lost: each later ``flush`` or ``close`` raises the next one first (so does the retry of
  a ``close`` that failed after finding a refusal).
* ``finish_turn`` seals journal events + pending; a finished turn refuses it with the
  pending events as ``unwritten_events``.
* ``crash`` drops the worker's pending events (the suspension rule: only those may be
  lost); ``clear`` empties the thread in the journal; compaction changes nothing.
* a worker reads the journal with its own pending events after the persisted ones;
  another store reads the journal.

:class:`LifecycleModel` predicts every outcome; a test drives real stores with the same
steps (:func:`random_schedule`) and compares each result and every read
(:func:`check_reads`) with the prediction. Seeds make schedules replayable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents

if TYPE_CHECKING:
    import random

    from s3_eventstore.store import EventStore

__all__ = [
    "TURNS",
    "Divergence",
    "LifecycleModel",
    "Outcome",
    "Step",
    "check_reads",
    "random_schedule",
]

TURNS: Final = (1, 2, 3, 4)
"""Turn numbers schedules use (few, so that workers collide)."""


class Divergence(AssertionError):
    """A store did something the model does not allow."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation did: ``None`` error for success, else the error's class name and,
    for refused writes, the events handed back as unwritten."""

    error: str | None = None
    unwritten: tuple[AgentEventEnvelope, ...] = ()

    @classmethod
    def of(cls, err: BaseException | None) -> Outcome:
        """The outcome of a call that raised ``err`` (``None``: it returned)."""
        if err is None:
            return cls()
        return cls(type(err).__name__, tuple(getattr(err, "unwritten_events", ())))


@dataclass(slots=True)
class _Turn:
    events: list[AgentEventEnvelope] = field(default_factory=list)
    finished: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a schedule."""

    op: str
    """``append``, ``flush``, ``finish``, ``close``, ``crash``, ``compact``, ``clear`` or
    ``read``."""
    worker: int = 0
    """The worker acting (``-1``: a fresh store, for ``read``)."""
    turn: int = 1
    """The turn (``append``, ``finish``, ``read``)."""
    count: int = 1
    """Events to append (``append``)."""
    read: str = "get_turns"
    """Which read (``read``)."""


def random_schedule(rng: random.Random, *, steps: int, workers: int) -> list[Step]:
    """A random schedule: appends, suspensions, finishes (often racing), crashes,
    compactions, clears and reads by any worker or a fresh store."""
    ops = (
        ["append"] * 8
        + ["flush"] * 3
        + ["finish"] * 4
        + ["close", "crash", "compact", "compact", "read", "read", "read"]
        + (["clear"] if rng.random() < 0.5 else [])
    )
    reads = ("get_turn", "get_turns", "get_events", "event_count", "get_events_since")
    schedule: list[Step] = []
    for _ in range(steps):
        op = rng.choice(ops)
        schedule.append(
            Step(
                op,
                worker=rng.randrange(-1 if op == "read" else 0, workers),
                turn=rng.choice(TURNS),
                count=rng.choice((1, 1, 2, 3)),
                read=rng.choice(reads),
            )
        )
    return schedule


class LifecycleModel:
    """The shared journal of one thread and the pending events of each worker."""

    def __init__(self, workers: int) -> None:
        self.journal: dict[int, _Turn] = {}
        self.pending: list[dict[int, list[AgentEventEnvelope]]] = [{} for _ in range(workers)]
        """Per worker: turn -> events appended and not persisted (an entry stays, empty,
        after a flush: the store still holds the turn open)."""
        self.refused: list[list[Outcome]] = [[] for _ in range(workers)]
        """Per worker: refusals found by a ``close`` and not raised yet (one per call)."""

    # --- writes ---------------------------------------------------------------------

    def may_refuse_append(self, turn: int) -> bool:
        """A store may refuse an append at once only when the turn is finished."""
        state = self.journal.get(turn)
        return state is not None and state.finished

    def append(self, worker: int, turn: int, event: AgentEventEnvelope) -> None:
        """The append was accepted."""
        self.pending[worker].setdefault(turn, []).append(event)

    def holds(self, worker: int, turn: int) -> bool:
        """Whether the worker holds the turn open (appended to it, not finished since)."""
        return turn in self.pending[worker]

    def persist(self, worker: int, turn: int) -> Outcome:
        """Persist one turn's pending events (a flush of it, or automatic persistence)."""
        events = self.pending[worker].get(turn, [])
        if not events:
            return Outcome()
        state = self.journal.get(turn)
        if state is not None and state.finished:
            del self.pending[worker][turn]
            return Outcome("TurnAlreadyFinishedError", tuple(events))
        self.journal.setdefault(turn, _Turn()).events.extend(events)
        self.pending[worker][turn] = []
        return Outcome()

    def flush(self, worker: int) -> Outcome:
        """Raise a queued refusal, else persist pending turns in turn order, stopping at
        the first refused one."""
        if self.refused[worker]:
            return self.refused[worker].pop(0)
        for turn in sorted(self.pending[worker]):
            outcome = self.persist(worker, turn)
            if outcome.error is not None:
                return outcome
        return Outcome()

    def close(self, worker: int) -> Outcome:
        """Flush until nothing is pending; the first refusal is the outcome, the others
        are queued for the next call (the caller closes again until it succeeds)."""
        refusals: list[Outcome] = []
        while True:
            outcome = self.flush(worker)
            if outcome.error is None:
                break
            refusals.append(outcome)
        self.pending[worker] = {}
        self.refused[worker] = refusals[1:]
        return refusals[0] if refusals else Outcome()

    def finish(self, worker: int, turn: int) -> Outcome:
        """Seal journal events + the worker's pending ones."""
        events = self.pending[worker].pop(turn, [])
        state = self.journal.get(turn)
        if state is not None and state.finished:
            return Outcome("TurnAlreadyFinishedError", tuple(events))
        sealed = self.journal.setdefault(turn, _Turn())
        sealed.events.extend(events)
        sealed.finished = True
        return Outcome()

    def drop(self, worker: int) -> None:
        """The worker's process ended (crash, or close after its flush)."""
        self.pending[worker] = {}
        self.refused[worker] = []

    def clear(self) -> None:
        """Another store cleared the thread."""
        self.journal = {}

    # --- reads ----------------------------------------------------------------------

    def view(self, worker: int | None) -> list[StoredTurnEvents]:
        """What ``get_turns`` must return to ``worker`` (``None``: a fresh store)."""
        pending = self.pending[worker] if worker is not None else {}
        turns: dict[int, StoredTurnEvents] = {}
        for turn, state in self.journal.items():
            events = list(state.events)
            if not state.finished:
                events += pending.get(turn, [])
            turns[turn] = StoredTurnEvents(turn, tuple(events), state.finished)
        for turn, events in pending.items():
            if turn not in turns and events:
                turns[turn] = StoredTurnEvents(turn, tuple(events), False)
        return [turns[turn] for turn in sorted(turns)]


async def check_reads(
    store: EventStore,
    thread_id: str,
    expected: list[StoredTurnEvents],
    *,
    which: str | None = None,
    turn: int = 1,
    offsets: list[int] | None = None,
) -> None:
    """Compare one read (``which``) or every read (``None``) of ``store`` with ``expected``.

    Raises:
        Divergence: a read disagrees with the model.
    """
    events = [event for stored in expected for event in stored.events]
    by_turn = {stored.turn: stored for stored in expected}

    def differ(name: str, got: object, want: object) -> None:
        if got != want:
            raise Divergence(f"{name}: store returned {got!r}, model says {want!r}")

    if which in (None, "get_turns"):
        differ("get_turns", await store.get_turns(thread_id), expected)
    if which in (None, "get_turn"):
        for number in TURNS if which is None else (turn,):
            differ(
                f"get_turn({number})", await store.get_turn(thread_id, number), by_turn.get(number)
            )
    if which in (None, "get_events"):
        differ("get_events", await store.get_events(thread_id), events)
    if which in (None, "event_count"):
        differ("event_count", await store.event_count(thread_id), len(events))
    if which in (None, "get_events_since"):
        for offset in offsets if offsets is not None else range(len(events) + 2):
            differ(
                f"get_events_since({offset})",
                await store.get_events_since(thread_id, offset),
                events[offset:],
            )
