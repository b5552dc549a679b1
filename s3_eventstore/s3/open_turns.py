"""The open turns of one store: which turns are buffered here, and which are known finished.

Appends land in an :class:`~s3_eventstore.s3.buffers.OpenTurn` until ``finish_turn``
seals it (concurrent appends and finishes of that turn wait for the outcome). Turns
this store finished, or saw finished while reading (turn objects, segment indexes),
are remembered in a bounded LRU: a hint, never trusted alone (another store may have
cleared the thread since): an ``append`` to such a turn is re-checked with one HEAD, and
``finish_turn`` always writes (its failed condition is the check).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from s3_eventstore.envelope import StoredTurnEvents
from s3_eventstore.errors import TurnFinishedError, TurnStreamingError
from s3_eventstore.s3.budget import BufferBudget
from s3_eventstore.s3.buffers import OpenTurn

if TYPE_CHECKING:
    from collections.abc import Mapping

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.s3.buffers import OpenTurnInfo

__all__ = ["OpenTurns", "streaming_error"]


def streaming_error(open_turn: OpenTurn) -> TurnStreamingError:
    """The error a read of a streamed open turn raises: its events are not in memory."""
    return TurnStreamingError(
        f"turn {open_turn.turn} of thread {open_turn.thread_id!r} is open and being "
        f"streamed to S3 (it outgrew max_turn_buffer_bytes), so its events are not in "
        f"memory; they can be read once finish_turn completes",
        thread_id=open_turn.thread_id,
        turn=open_turn.turn,
    )


class OpenTurns:
    """Open turns by thread and turn, the memory they hold, and turns known finished.

    Args:
        max_buffer_bytes: Bytes all open turns may hold in memory together.
        finished_limit: How many finished ``(thread, turn)`` pairs to remember.
    """

    def __init__(self, max_buffer_bytes: int, finished_limit: int) -> None:
        self.budget = BufferBudget(max_buffer_bytes)
        """Bytes held by open turns, against ``max_buffer_bytes``."""
        self.by_thread: dict[str, dict[int, OpenTurn]] = {}
        """Open turns, by thread id and turn number."""
        self._finished: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._finished_limit = finished_limit

    def get(self, thread_id: str, turn: int) -> OpenTurn | None:
        """The open turn, or ``None``."""
        return self.by_thread.get(thread_id, {}).get(turn)

    def of_thread(self, thread_id: str) -> Mapping[int, OpenTurn]:
        """The thread's open turns by turn number (empty when none)."""
        return self.by_thread.get(thread_id, {})

    def infos(self) -> list[OpenTurnInfo]:
        """A snapshot of every open turn, oldest first."""
        infos = [turn.info() for turns in self.by_thread.values() for turn in turns.values()]
        return sorted(infos, key=lambda info: info.opened_at)

    def count(self) -> int:
        """How many turns are open."""
        return sum(len(turns) for turns in self.by_thread.values())

    def all(self) -> list[OpenTurn]:
        """Every open turn."""
        return [open_turn for turns in self.by_thread.values() for open_turn in turns.values()]

    # --- the turn state machine -------------------------------------------------------

    async def open_for_append(self, thread_id: str, turn: int) -> OpenTurn:
        """The turn to append to, opened if need be; waits while a ``finish_turn`` seals it.

        Raises:
            TurnFinishedError: this store knows the turn is finished.
        """
        while True:
            open_turn = self.get(thread_id, turn)
            if open_turn is None:
                if (thread_id, turn) in self._finished:
                    raise TurnFinishedError(thread_id, turn)
                open_turn = OpenTurn(thread_id, turn)
                self.by_thread.setdefault(thread_id, {})[turn] = open_turn
                return open_turn
            if open_turn.sealing is None:
                return open_turn
            await open_turn.sealing.wait()  # a finish_turn is uploading: see how it ends

    async def seal(self, thread_id: str, turn: int, key: str) -> OpenTurn:
        """Claim the open turn for one ``finish_turn``; concurrent calls queue behind it.

        A turn believed finished is opened all the same: the finish's conditional write
        decides (``key`` names it in errors raised later).
        """
        del key
        while True:
            open_turn = self.get(thread_id, turn)
            if open_turn is None:
                open_turn = OpenTurn(thread_id, turn)
                self.by_thread.setdefault(thread_id, {})[turn] = open_turn
            if open_turn.sealing is None:
                open_turn.sealing = asyncio.Event()
                return open_turn
            await open_turn.sealing.wait()

    def unseal(self, open_turn: OpenTurn) -> None:
        """A ``finish_turn`` failed: the turn is open again, and its waiters wake up."""
        if open_turn.sealing is not None:
            open_turn.sealing.set()
            open_turn.sealing = None

    def drop_if_unused(self, open_turn: OpenTurn) -> None:
        """Forget a turn opened for an append that was then refused (it holds nothing and
        this store never wrote it): a refused append creates no turn."""
        persistence = open_turn.persistence
        if (
            not open_turn.events
            and open_turn.stream is None
            and open_turn.sealing is None
            and not persistence.known_persisted
            and not persistence.attempts
            and not persistence.needs_check
        ):
            self.drop(open_turn)

    def drop(self, open_turn: OpenTurn) -> None:
        """Forget an open turn (finished, discarded or cleared) and free its memory."""
        turns = self.by_thread.get(open_turn.thread_id)
        if turns is not None and turns.get(open_turn.turn) is open_turn:
            if open_turn.stream is None:
                self.budget.release(open_turn.held_bytes)
            del turns[open_turn.turn]
            if not turns:
                del self.by_thread[open_turn.thread_id]
        if open_turn.sealing is not None:
            open_turn.sealing.set()

    async def discard(self, thread_id: str, turn: int) -> tuple[AgentEventEnvelope, ...]:
        """Drop an open turn without writing it; its events (``()`` when streamed or absent).

        Raises:
            StorageError: aborting a streamed turn's upload failed (the turn is dropped).
        """
        while True:
            open_turn = self.get(thread_id, turn)
            if open_turn is None:
                return ()
            if open_turn.sealing is None:
                self.drop(open_turn)
                if open_turn.stream is not None:
                    await open_turn.stream.abort()
                return tuple(open_turn.events)
            await open_turn.sealing.wait()

    async def forget_thread(self, thread_id: str) -> None:
        """Drop the thread's open turns (aborting streamed uploads) and its finished turns."""
        for turn in list(self.of_thread(thread_id)):
            open_turn = self.by_thread[thread_id][turn]
            if open_turn.sealing is None:
                self.drop(open_turn)
                if open_turn.stream is not None:
                    await open_turn.stream.abort()
        for item in [item for item in self._finished if item[0] == thread_id]:
            del self._finished[item]

    # --- turns known finished ---------------------------------------------------------

    def forget_finished(self, thread_id: str, turn: int) -> None:
        """The turn is not finished after all (the thread was cleared since)."""
        self._finished.pop((thread_id, turn), None)

    def remember_finished(self, thread_id: str, turn: int) -> None:
        """Remember that the turn is finished (bounded: the oldest are forgotten)."""
        self._finished[(thread_id, turn)] = None
        self._finished.move_to_end((thread_id, turn))
        while len(self._finished) > self._finished_limit:
            self._finished.popitem(last=False)

    # --- reads --------------------------------------------------------------------------

    def merge(
        self, thread_id: str, archived: dict[int, StoredTurnEvents]
    ) -> list[StoredTurnEvents]:
        """Archived turns plus the thread's open turns not archived, in turn order.

        Raises:
            TurnStreamingError: an open turn to merge is streamed.
        """
        merged = dict(archived)
        for turn, open_turn in self.of_thread(thread_id).items():
            if turn not in merged:
                if open_turn.stream is not None:
                    raise streaming_error(open_turn)
                merged[turn] = StoredTurnEvents(turn, tuple(open_turn.events), False)
        return [merged[turn] for turn in sorted(merged)]
