"""One thread of framework items over an :class:`EventStore`: commit a batch as one turn,
read the effective items back. Shared by every adapter; pure public store API.

Commit protocol (``ThreadJournal.commit``): take the next turn number (one past the
highest turn the store shows, open or finished), ``append`` the batch, ``finish_turn``.
With :class:`~s3_eventstore.S3EventStore` that is one conditional PUT, so two writers
that pick the same number cannot both win: the loser gets ``TurnAlreadyFinishedError``,
re-reads the thread and commits again under the next number. Nothing is lost, nothing
is written twice. Inside one process, commits to one thread of one store are serialised
by a lock, so two sessions sharing a store never mix their batches in one open turn.

A batch whose ``finish_turn`` fails for another reason is discarded when the store can
(``S3EventStore.discard_turn``) and the error propagates: the batch is then not in the
thread, and readers skip open turns anyway, so ``commit`` is all or nothing. (One
ambiguity remains, as with any remote write: a PUT that succeeded but whose response was
lost after all retries reports an error although the turn is stored.)
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from s3_eventstore.adapters.mapping import Record, replay
from s3_eventstore.errors import InvalidThreadIdError, TurnAlreadyFinishedError, TurnFinishedError
from s3_eventstore.store import EventStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents

__all__ = ["MAX_COMMIT_ATTEMPTS", "ThreadJournal"]

MAX_COMMIT_ATTEMPTS = 16
"""Commits lost to concurrent writers before ``commit`` gives up and raises."""

_locks: weakref.WeakKeyDictionary[EventStore, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


@runtime_checkable
class _Discarding(Protocol):
    async def discard_turn(self, thread_id: str, turn: int) -> Any: ...


def _thread_lock(store: EventStore, thread_id: str) -> asyncio.Lock:
    per_store = _locks.setdefault(store, {})
    lock = per_store.get(thread_id)
    if lock is None:
        lock = per_store[thread_id] = asyncio.Lock()
    return lock


class ThreadJournal:
    """The framework items of one thread in one store.

    Args:
        store: Any :class:`EventStore`. Use it from one event loop (wrap it in
            :class:`~s3_eventstore.sync.LoopBoundEventStore` to share it across loops).
        thread_id: The thread (the framework's session or conversation id).

    Raises:
        InvalidThreadIdError: ``thread_id`` is not a non-empty string.
    """

    def __init__(self, store: EventStore, thread_id: str) -> None:
        if not isinstance(thread_id, str) or not thread_id:
            raise InvalidThreadIdError(f"thread id must be a non-empty string, not {thread_id!r}")
        if not isinstance(store, EventStore):
            raise TypeError(f"expected an EventStore, not {type(store).__name__}")
        self.store = store
        self.thread_id = thread_id
        self._last_turn: int | None = None

    def lock(self) -> asyncio.Lock:
        """The lock serialising commits to this thread of this store, in this process."""
        return _thread_lock(self.store, self.thread_id)

    async def turns(self) -> list[StoredTurnEvents]:
        """Every turn of the thread (remembering the highest turn number seen).

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
        """
        turns = await self.store.get_turns(self.thread_id)
        self._note(turns)
        return turns

    def _note(self, turns: Sequence[StoredTurnEvents]) -> None:
        if turns:
            self._last_turn = max(self._last_turn or 0, turns[-1].turn)

    async def read(
        self, event_types: Iterable[str]
    ) -> list[tuple[AgentEventEnvelope, dict[str, Any]]]:
        """The effective events of ``event_types`` (see :func:`mapping.replay`).

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
            UnreadableItemError: a retraction is malformed.
        """
        return replay(await self.turns(), event_types)

    async def commit(self, records: Sequence[Record], *, locked: bool = False) -> int:
        """Write ``records`` as one new finished turn; returns its number.

        Args:
            records: The batch, in order (their positions become the sequences).
            locked: The caller holds :meth:`lock` already.

        Raises:
            InvalidEnvelopeError: a record cannot be written as JSON exactly; nothing
                was written.
            StorageError: the turn could not be written; nothing was written.
            TurnAlreadyFinishedError: other writers took every turn number tried
                (``MAX_COMMIT_ATTEMPTS``).
        """
        envelopes = [record.envelope(index) for index, record in enumerate(records)]
        if locked:
            return await self._commit(envelopes)
        async with self.lock():
            return await self._commit(envelopes)

    async def _commit(self, envelopes: Sequence[AgentEventEnvelope]) -> int:
        lost: TurnAlreadyFinishedError | TurnFinishedError | None = None
        for _ in range(MAX_COMMIT_ATTEMPTS):
            if self._last_turn is None or lost is not None:
                await self.turns()
            turn = (self._last_turn or 0) + 1
            self._last_turn = turn
            try:
                for envelope in envelopes:
                    await self.store.append(self.thread_id, turn, envelope)
                await self.store.finish_turn(self.thread_id, turn)
            except (TurnAlreadyFinishedError, TurnFinishedError) as err:
                lost = err  # another writer finished this turn number first: take the next
                continue
            except BaseException:
                await self._discard(turn)
                raise
            return turn
        assert lost is not None
        raise lost

    async def _discard(self, turn: int) -> None:
        if isinstance(self.store, _Discarding):
            with contextlib.suppress(Exception):  # the commit's own error is the one to report
                await self.store.discard_turn(self.thread_id, turn)

    async def clear(self) -> None:
        """Delete the thread (``store.clear``).

        Raises:
            StorageError: some objects could not be deleted (``ObjectLockedError`` under
                Object Lock retention).
        """
        async with self.lock():
            await self.store.clear(self.thread_id)
            self._last_turn = None
