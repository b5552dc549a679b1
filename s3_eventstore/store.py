"""The EventStore contract: agent-sdk's ``EventStore`` trait, in async Python.

Stores implement the five required operations; the three derived reads have
correct defaults built on ``get_turns`` that a store overrides when it can answer
more cheaply (the S3 store answers ``event_count`` from manifests, without
downloading events).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import InvalidInputError

__all__ = ["EventStore"]


def check_offset(offset: Any) -> int:
    """Validate a ``get_events_since`` offset: a non-negative ``int``."""
    if type(offset) is not int or offset < 0:
        raise InvalidInputError(f"offset must be a non-negative int, not {offset!r}")
    return offset


class EventStore(ABC):
    """Turn-scoped event storage for one agent deployment.

    Contract (pinned by :mod:`s3_eventstore.testing`):

    * Threads are isolated by their exact id string; turns are ints in ``0..2**64-1``.
    * ``append`` and ``finish_turn`` create the turn if it does not exist; ``finish_turn``
      on a turn with no events yields an empty finished turn.
    * Reads are turn-major: ascending turn number, then append order. Never by
      ``sequence`` or ``timestamp`` (sequences restart at 0 every agent run).
    * ``clear`` removes every turn of the thread, open or finished; unknown threads are fine.
    * Open turns outlive the store: ``flush`` persists them, and a fresh store on the same
      backend (another process) sees them with ``finished=False`` and continues them.
    """

    async def flush(self) -> None:
        """Persist the events of every turn open in this store, now.

        Afterwards a fresh store on the same backend sees them (``finished=False``) and can
        continue the turns; a crash of this process loses none of them. The default does
        nothing: a store whose ``append`` persists at once has nothing to flush.

        Raises:
            TurnAlreadyFinishedError: another writer finished one of the turns; its events
                that this store held are in ``unwritten_events`` (other turns are flushed
                or stay open here: call ``flush`` again).
            StorageError: the backend failed; the turns stay open here, nothing is lost.
        """
        return

    @abstractmethod
    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """Record one event at the end of an open turn, creating the turn if needed.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            InvalidEnvelopeError: ``envelope`` is not an :class:`AgentEventEnvelope`.
            TurnFinishedError: the turn is known to be finished.
        """

    @abstractmethod
    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """Close a turn for good: the authoritative barrier after which it never changes.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            TurnAlreadyFinishedError: the turn was already finished, by this store or another.
            StorageError: the store could not persist the turn; it stays open, nothing is lost.
        """

    @abstractmethod
    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """One turn with its events, or ``None`` if the thread or turn is unknown.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            IntegrityError: the stored turn failed verification.
            StorageError: the store could not be read.
        """

    @abstractmethod
    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn of the thread in ascending turn order; ``[]`` for an unknown thread.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: a stored turn failed verification.
            StorageError: the store could not be read.
        """

    @abstractmethod
    async def clear(self, thread_id: str) -> None:
        """Delete every turn of the thread, open or finished. Unknown threads are a no-op.

        Raises:
            InvalidThreadIdError: bad thread id.
            StorageError: some objects could not be deleted.
        """

    async def get_events(self, thread_id: str) -> list[AgentEventEnvelope]:
        """All events of the thread, turn-major.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: a stored turn failed verification.
            StorageError: the store could not be read.
        """
        return StoredTurnEvents.events_of(await self.get_turns(thread_id))

    async def event_count(self, thread_id: str) -> int:
        """``len(await get_events(thread_id))``.

        Note for implementers: this default downloads every event; override it when the
        backend can count without doing so.

        Raises:
            InvalidThreadIdError: bad thread id.
            IntegrityError: a stored turn failed verification.
            StorageError: the store could not be read.
        """
        return len(await self.get_events(thread_id))

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """``(await get_events(thread_id))[offset:]``; ``[]`` past the end.

        Note for implementers: this default downloads every event; override it when the
        backend can skip whole turns before ``offset``.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidInputError: ``offset`` is not a non-negative int.
            IntegrityError: a stored turn failed verification.
            StorageError: the store could not be read.
        """
        check_offset(offset)
        return (await self.get_events(thread_id))[offset:]
