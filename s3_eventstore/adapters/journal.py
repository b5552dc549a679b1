"""One thread of framework items over an :class:`EventStore`: commit a batch as one turn,
read the effective items back. Shared by every adapter; pure public store API.

Reads (``ThreadJournal.read``) are incremental: finished turns are immutable, so they
are kept, and later reads fetch only what is new (see :meth:`ThreadJournal.finished_turns`).

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
from s3_eventstore.envelope import StoredTurnEvents
from s3_eventstore.errors import InvalidThreadIdError, TurnAlreadyFinishedError, TurnFinishedError
from s3_eventstore.store import EventStore

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from s3_eventstore.envelope import AgentEventEnvelope

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
        self._finished: dict[int, StoredTurnEvents] | None = None  # None: not read yet
        self._unsettled: set[int] = set()  # turns seen open: to look at again
        self._recheck: int | None = None  # a failed commit's number, to check before reuse

    def lock(self) -> asyncio.Lock:
        """The lock serialising commits to this thread of this store, in this process."""
        return _thread_lock(self.store, self.thread_id)

    async def turns(self) -> list[StoredTurnEvents]:
        """Every turn of the thread, read in full (remembering what it saw).

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
        """
        turns = await self.store.get_turns(self.thread_id)
        self._note(turns)
        self._finished = {turn.turn: turn for turn in turns if turn.finished}
        self._unsettled = {turn.turn for turn in turns if not turn.finished}
        return turns

    def _note(self, turns: Sequence[StoredTurnEvents]) -> None:
        if turns:
            self._last_turn = max(self._last_turn or 0, turns[-1].turn)

    async def finished_turns(self) -> list[StoredTurnEvents]:
        """The thread's finished turns in order, read incrementally after the first time.

        Finished turns never change, so they are kept. A later read costs a ``get_turn``
        of the newest kept turn (it must still be there, unchanged: otherwise the thread
        was cleared, and everything is read again), one per turn seen open before, one
        per new turn and one that finds nothing — instead of every turn of the thread.
        New turns are found by number, one past the newest: the journal numbers its
        commits without gaps (a failed commit's number is used again).

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
        """
        if self._finished is None or not await self._cache_still_valid():
            await self.turns()  # a full read: nothing more to look up
        else:
            for number in sorted(self._unsettled):
                await self._settle(number)
            number = max([*self._finished, *self._unsettled], default=0) + 1
            while await self._settle(number):
                number += 1
        assert self._finished is not None
        return [self._finished[number] for number in sorted(self._finished)]

    async def _cache_still_valid(self) -> bool:
        assert self._finished is not None
        if not self._finished:
            return True
        newest = max(self._finished)
        current = await self.store.get_turn(self.thread_id, newest)
        return (
            current is not None
            and current.finished
            and current.events == self._finished[newest].events
        )

    async def _settle(self, number: int) -> bool:
        """Look turn ``number`` up; keep it if finished. False when there is no such turn."""
        assert self._finished is not None
        turn = await self.store.get_turn(self.thread_id, number)
        self._unsettled.discard(number)
        if turn is None:
            return False
        self._last_turn = max(self._last_turn or 0, number)
        if turn.finished:
            self._finished[number] = turn
        else:
            self._unsettled.add(number)
        return True

    async def read(
        self, event_types: Iterable[str]
    ) -> list[tuple[AgentEventEnvelope, dict[str, Any]]]:
        """The effective events of ``event_types`` (see :func:`mapping.replay`).

        Raises:
            StorageError: the store could not be read.
            IntegrityError: a stored turn failed verification.
            UnreadableItemError: a retraction is malformed.
        """
        return replay(await self.finished_turns(), event_types)

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
            if self._recheck == turn:
                self._recheck = None
                if await self.store.get_turn(self.thread_id, turn) is not None:
                    continue  # still taken: the next number
            try:
                for envelope in envelopes:
                    await self.store.append(self.thread_id, turn, envelope)
                await self.store.finish_turn(self.thread_id, turn)
            except (TurnAlreadyFinishedError, TurnFinishedError) as err:
                lost = err  # another writer finished this turn number first: take the next
                continue
            except BaseException:
                await self._discard(turn)
                # Use the number again (readers find turns by number: no gaps), after
                # checking that it is free (the batch could not be discarded, or the
                # PUT landed although it reported an error).
                self._last_turn, self._recheck = turn - 1, turn
                raise
            if self._finished is not None:
                self._finished[turn] = StoredTurnEvents(turn, tuple(envelopes), True)
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
            self._finished, self._unsettled = {}, set()
