"""InMemoryEventStore: the reference implementation of the contract.

Deliberately simple, so that it can serve as the oracle the S3 store is compared
with. Single event loop, no persistence beyond the process: every ``append`` lands in
the journal at once, so ``flush`` and ``close`` have nothing to do, and a store from
:meth:`InMemoryEventStore.reopen` (the journal shared, as agent-sdk's clones share
theirs) sees and continues every open turn - what another process sees of a flushed
S3 store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    InvalidEnvelopeError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
)
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.store import EventStore

__all__ = ["InMemoryEventStore", "InMemoryJournal"]


def check_envelope(envelope: object) -> AgentEventEnvelope:
    """Refuse anything but an :class:`AgentEventEnvelope` (dicts must go through ``from_dict``)."""
    if not isinstance(envelope, AgentEventEnvelope):
        raise InvalidEnvelopeError(
            f"expected an AgentEventEnvelope, not {type(envelope).__name__}; "
            "build one with AgentEventEnvelope.from_dict or .from_json"
        )
    return envelope


@dataclass(slots=True)
class _Turn:
    events: list[AgentEventEnvelope] = field(default_factory=list)
    finished: bool = False


@dataclass(slots=True, eq=False)
class InMemoryJournal:
    """What an :class:`InMemoryEventStore` holds; stores from ``reopen()`` share it."""

    threads: dict[str, dict[int, _Turn]] = field(default_factory=dict)


class InMemoryEventStore(EventStore):
    """Keeps every thread in a dict. Good for tests and single-process tools.

    Args:
        journal: The journal to keep threads in (default: a new, empty one).
    """

    def __init__(self, journal: InMemoryJournal | None = None) -> None:
        self.journal = journal if journal is not None else InMemoryJournal()
        """The threads, shared with every store from :meth:`reopen`."""
        self._threads = self.journal.threads

    async def close(self, *, flush: bool = True) -> None:
        """Nothing to release: every append is in the journal already (``flush`` is
        accepted for the contract's sake and changes nothing)."""
        del flush

    def reopen(self) -> InMemoryEventStore:
        """Another store over the same journal, as a second process opens the same database.

        Open turns are shared: its appends continue them, and a finish by either store is
        final for both.
        """
        return InMemoryEventStore(self.journal)

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """See :meth:`EventStore.append`."""
        check_envelope(envelope)
        fast = type(thread_id) is str and type(turn) is int
        state = self._threads.get(thread_id, {}).get(turn) if fast else None
        if state is None:
            check_thread_id(thread_id)
            check_turn(turn)
            # Created only once the event is accepted: a refused append leaves no turn.
            state = self._threads.setdefault(thread_id, {}).setdefault(turn, _Turn())
        if state.finished:
            raise TurnFinishedError(thread_id, turn)
        state.events.append(envelope)

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """See :meth:`EventStore.finish_turn`."""
        check_thread_id(thread_id)
        check_turn(turn)
        state = self._threads.setdefault(thread_id, {}).setdefault(turn, _Turn())
        if state.finished:
            raise TurnAlreadyFinishedError(thread_id, turn)
        state.finished = True

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """See :meth:`EventStore.get_turn`."""
        check_thread_id(thread_id)
        check_turn(turn)
        state = self._threads.get(thread_id, {}).get(turn)
        if state is None:
            return None
        return StoredTurnEvents(turn, tuple(state.events), state.finished)

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """See :meth:`EventStore.get_turns`."""
        check_thread_id(thread_id)
        turns = self._threads.get(thread_id, {})
        return [
            StoredTurnEvents(number, tuple(turns[number].events), turns[number].finished)
            for number in sorted(turns)
        ]

    async def clear(self, thread_id: str) -> None:
        """See :meth:`EventStore.clear`."""
        check_thread_id(thread_id)
        self._threads.pop(thread_id, None)
