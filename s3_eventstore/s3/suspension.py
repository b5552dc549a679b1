"""The write protocol of one turn key (docs/FORMAT.md section 11.4): flush and finish as
conditional writes, and what a store concludes when its condition fails.

Every change of a turn's state is one conditional PUT on its key: ``If-None-Match: *``
when the store knows of no object there, ``If-Match: E`` when it last saw (or wrote) the
open object with ETag ``E``. A 412 (or 404, or 409) means "read the key and decide
again": an open object is merged (its events first, then this store's), a finished one
or a stub refuses (unless this store's own earlier finish wrote it: rule O), an absent
key starts over. Rule L finds which of this store's earlier attempts landed although
their response was lost, so no event is written twice.

This module holds the per-turn state and the decision logic; the I/O (PUT, reading the
key) comes in as callables, so the protocol is unit-tested without a server.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from s3_eventstore.errors import (
    PreconditionFailedError,
    StorageError,
    StorageUnavailableError,
    TurnAlreadyFinishedError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from s3_eventstore.envelope import AgentEventEnvelope

__all__ = [
    "KeyState",
    "Persistence",
    "WriteMode",
    "WriteResult",
    "is_condition_failure",
    "resolve",
    "unlanded",
    "write_turn",
]

WriteMode = Literal["open", "finished"]
"""``"open"``: persist the turn and keep it open (flush); ``"finished"``: seal it."""
KeyKind = Literal["absent", "open", "finished", "stub"]
_MAX_ROUNDS: Final = 16
"""Conditional writes one flush or finish tries before giving up (each lost round means
another writer changed the key in between)."""
_REREAD_CODES: Final = frozenset({"NoSuchKey", "ConditionalRequestConflict", "404"})
"""Besides 412: If-Match on a missing key is 404 on AWS; concurrent conditional writes to
one key may get 409 ConditionalRequestConflict. Each means: read the key again."""


def _may_have_landed(err: StorageError) -> bool:
    """Whether a failed write's outcome is unknown: a network fault, a timeout or a 5xx
    (the request may have been applied), not a refusal (access, missing bucket)."""
    return isinstance(err, StorageUnavailableError) or type(err) is StorageError


def is_condition_failure(err: BaseException) -> bool:
    """Whether a conditional write failed because the key is not as the writer believed."""
    return isinstance(err, PreconditionFailedError) or (
        isinstance(err, StorageError) and err.code in _REREAD_CODES
    )


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a turn key holds, as one read of it found."""

    kind: KeyKind
    """``absent``, ``open``, ``finished`` or ``stub`` (compacted: the events are the turn's
    copy in its segment)."""
    events: tuple[AgentEventEnvelope, ...] = ()
    """The turn's events (persisted ones, for an open object)."""
    etag: str | None = None
    """ETag of the object under the key (``None`` when absent)."""
    writer: str | None = None
    """Writer id of the write that made it (a finished turn's ``finish_turn``)."""


@dataclass(frozen=True, slots=True)
class _Attempt:
    writer: str
    carried: tuple[AgentEventEnvelope, ...]
    """The pending events this attempt wrote after ``base``."""


@dataclass(slots=True, eq=False)
class Persistence:
    """What one store knows about one open turn's key: a hint that every write re-checks."""

    base: tuple[AgentEventEnvelope, ...] = ()
    """Events of the open object this store last wrote or read under the key."""
    etag: str | None = None
    """Its ETag (``None``: this store knows of no object under the key)."""
    attempts: list[_Attempt] = field(default_factory=list)
    """Writes sent since the key was last known, whose outcome may be unknown."""
    finish_ids: set[str] = field(default_factory=set)
    """Writer ids of this store's finish attempts on the turn (rule O)."""
    uncertain: bool = False
    """The last write raised after it may have been sent: its outcome is unknown."""
    finish_uncertain: bool = False
    """A ``finish_turn`` raised after its PUT may have landed: the next append reads the
    key first (the turn may be sealed)."""
    own_finished: bool = False
    """A read showed that one of this store's finish attempts sealed the turn."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One write of the key at a time (flush, automatic persistence and finish)."""

    @property
    def needs_check(self) -> bool:
        """Whether an append must read the key before it is accepted (rule O)."""
        return self.finish_uncertain or self.own_finished

    @property
    def known_persisted(self) -> bool:
        """Whether this store has written or seen an open object under the key."""
        return self.etag is not None


def unlanded(
    current: Sequence[AgentEventEnvelope],
    persistence: Persistence,
    pending: Sequence[AgentEventEnvelope],
) -> int:
    """Rule L: how many of ``pending`` (from the front) ``current`` already holds because an
    earlier attempt of this store landed without this store hearing of it."""
    base = persistence.base
    if len(current) <= len(base) or tuple(current[: len(base)]) != base:
        return 0
    landed = 0
    for attempt in persistence.attempts:
        size = len(attempt.carried)
        if (
            size > landed
            and tuple(current[len(base) : len(base) + size]) == attempt.carried
            and tuple(pending[:size]) == attempt.carried
        ):
            landed = size
    return landed


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How a write ended (when it did not raise)."""

    etag: str | None
    """The ETag of the object the write left under the key."""
    written: int
    """Pending events (from the front) this write persisted: drop them from the buffer."""
    own_finish: bool = False
    """A flush found the turn sealed by this store's own earlier finish."""


async def write_turn(
    persistence: Persistence,
    mode: WriteMode,
    *,
    pending: Callable[[], Sequence[AgentEventEnvelope]],
    drop: Callable[[int], None],
    put: Callable[[Sequence[AgentEventEnvelope], str, str | None], Awaitable[str]],
    read_key: Callable[[], Awaitable[KeyState]],
    thread_id: str,
    turn: int,
    key: str,
) -> WriteResult:
    """Persist (``open``) or seal (``finished``) a turn by conditional writes on its key.

    ``pending()`` returns the events this store holds unpersisted, in append order (it may
    grow at the end between calls); ``drop(n)`` removes the first ``n`` of them, which the
    key is found to hold already (rule L). ``put(events, writer, if_match)`` writes the
    whole turn in ``mode`` (``if_match=None``: create only) and returns the ETag, raising
    :class:`PreconditionFailedError` (or a 404 / 409 :class:`StorageError`) when its
    condition fails. ``read_key()`` reads the key.

    Raises:
        TurnAlreadyFinishedError: another writer sealed the turn; ``unwritten_events``
            are the pending events not in it (the caller drops the turn).
        StorageError: a request failed; the outcome is unknown and ``persistence`` says so
            (``uncertain``): the next write or read resolves it (rule L, rule O).
    """
    for _ in range(_MAX_ROUNDS):
        events = tuple(pending())
        if mode == "open" and not events:
            return WriteResult(persistence.etag, 0)
        writer = os.urandom(16).hex()
        persistence.attempts.append(_Attempt(writer, events))
        if mode == "finished":
            persistence.finish_ids.add(writer)
        try:
            etag = await put((*persistence.base, *events), writer, persistence.etag)
        except StorageError as err:
            if not is_condition_failure(err):
                if _may_have_landed(err):
                    persistence.uncertain = True
                    persistence.finish_uncertain |= mode == "finished"
                raise
        else:
            persistence.uncertain = persistence.finish_uncertain = False
            persistence.attempts.clear()
            if mode == "open":
                persistence.base = (*persistence.base, *events)
                persistence.etag = etag
            return WriteResult(etag, len(events))
        state = await read_key()
        drop(resolve(persistence, state, tuple(pending())))
        if state.kind in ("finished", "stub"):
            left = tuple(pending())
            if state.writer is not None and state.writer in persistence.finish_ids:
                persistence.own_finished = True
                if not left:
                    return WriteResult(state.etag, 0, own_finish=True)
            raise TurnAlreadyFinishedError(thread_id, turn, unwritten_events=left, key=key)
    raise StorageError(
        f"{key}: other writers kept changing the turn while this store wrote it "
        f"({_MAX_ROUNDS} rounds); retry",
        operation="PutObject",
        code="TooManyRounds",
    )


def resolve(
    persistence: Persistence, state: KeyState, pending: Sequence[AgentEventEnvelope]
) -> int:
    """Update what the store knows from a read of the key; returns how many of ``pending``
    (from the front) the key already holds (rule L)."""
    landed = unlanded(state.events, persistence, pending)
    persistence.attempts.clear()
    persistence.uncertain = persistence.finish_uncertain = False
    if state.kind == "open":
        persistence.base = state.events
        persistence.etag = state.etag
    else:
        persistence.base = ()
        persistence.etag = None
    return landed
