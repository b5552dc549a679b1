"""The error tree of s3_eventstore, and nothing else.

Modelled on DB-API: one base class, a branch per kind of failure, and builtin
mix-ins where a caller would naturally catch the builtin (``ValueError`` for bad
input, ``ConnectionError``/``TimeoutError`` for transient storage faults).
Storage driver errors (botocore) never escape the public API: they are
translated in one place (:mod:`s3_eventstore.s3.errors`) and chained with
``raise ... from err``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AccessDeniedError",
    "BucketNotFoundError",
    "BufferLimitError",
    "ConfigurationError",
    "ConflictingCopiesError",
    "CorruptObjectError",
    "EventStoreError",
    "IntegrityError",
    "InvalidEnvelopeError",
    "InvalidInputError",
    "InvalidThreadIdError",
    "InvalidTurnError",
    "MissingExtraError",
    "ObjectLockedError",
    "PreconditionFailedError",
    "StorageError",
    "StorageThrottledError",
    "StorageUnavailableError",
    "SyncFacadeError",
    "TurnAlreadyFinishedError",
    "TurnFinishedError",
    "TurnStateError",
    "TurnStreamingError",
    "UnreadableItemError",
    "UnsafeEndpointError",
    "UnsupportedFormatError",
]


class EventStoreError(Exception):
    """Base class of every error raised by this library."""


# --- invalid input: raised before any request is made ----------------------------------


class InvalidInputError(EventStoreError, ValueError):
    """An argument is not acceptable; nothing was read or written."""


class InvalidThreadIdError(InvalidInputError):
    """A thread id is empty, not a string, not valid UTF-8 or too long for the key layout."""


class InvalidTurnError(InvalidInputError):
    """A turn number is not an integer in ``0..2**64-1`` (``bool`` is not an integer here)."""


class InvalidEnvelopeError(InvalidInputError):
    """An envelope is not in the agent-sdk wire shape or cannot be serialised losslessly."""


class ConfigurationError(EventStoreError, ValueError):
    """The store was configured with values it cannot work with (bucket, prefix, limits)."""


class MissingExtraError(ConfigurationError):
    """A feature needs an optional dependency that is not installed.

    ``extra`` names the package extra that provides it:
    ``pip install 's3-eventstore[EXTRA]'``.
    """

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(f"{message}: pip install 's3-eventstore[{extra}]'")
        self.extra = extra


# --- the turn state machine: open -> finished --------------------------------------------


class TurnStateError(EventStoreError):
    """An operation does not fit the turn's state. Carries ``thread_id`` and ``turn``."""

    def __init__(self, message: str, *, thread_id: str, turn: int) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.turn = turn


class TurnFinishedError(TurnStateError):
    """``append`` to a turn that is already finished; the event was not recorded.

    When the store learnt it while persisting the turn's earlier events (automatic
    persistence), those were not written either: they are in ``unwritten_events``.
    """

    def __init__(self, thread_id: str, turn: int, *, unwritten_events: Sequence[Any] = ()) -> None:
        super().__init__(
            f"cannot append to finished turn {turn} of thread {thread_id!r}",
            thread_id=thread_id,
            turn=turn,
        )
        self.unwritten_events: tuple[Any, ...] = tuple(unwritten_events)


class TurnAlreadyFinishedError(TurnStateError):
    """``finish_turn`` of a turn that is already finished, by this store or another writer.

    When another writer won the race, the events this store had buffered for the
    turn were *not* written. They are handed back in ``unwritten_events`` (empty
    when there were none) so the caller decides what to do with them.
    """

    def __init__(
        self,
        thread_id: str,
        turn: int,
        *,
        unwritten_events: Sequence[Any] = (),
        key: str | None = None,
    ) -> None:
        detail = f" (object {key!r} exists)" if key else ""
        super().__init__(
            f"turn {turn} is already finished in thread {thread_id!r}{detail}",
            thread_id=thread_id,
            turn=turn,
        )
        self.unwritten_events: tuple[Any, ...] = tuple(unwritten_events)
        """The ``AgentEventEnvelope`` objects that were not written (typed ``Any``: this
        module is the bottom of the package and imports nothing of it)."""
        self.key = key


class TurnStreamingError(TurnStateError):
    """The open turn is being streamed to S3, so its events are not held in memory.

    Raised by reads that would need the events of such a turn (they become readable
    when ``finish_turn`` completes), and by ``append`` after a failed ``finish_turn``
    of a streamed turn sealed its payload (call ``finish_turn`` again, or discard it).
    """

    def __init__(self, message: str, *, thread_id: str, turn: int) -> None:
        super().__init__(message, thread_id=thread_id, turn=turn)


# --- resource limits -----------------------------------------------------------------------


class BufferLimitError(EventStoreError):
    """``append`` would take the store's buffered bytes over ``max_buffer_bytes``.

    Raised before anything is buffered: the event was not recorded. Finish or discard
    open turns (or raise the limit) and append it again.
    """

    def __init__(self, message: str, *, limit: int, buffered: int) -> None:
        super().__init__(message)
        self.limit = limit
        """The configured ``max_buffer_bytes``."""
        self.buffered = buffered
        """Bytes buffered across open turns when the append was refused."""


# --- integrity: what is in the bucket is not what the manifest promises -----------------


class IntegrityError(EventStoreError):
    """An object in the bucket failed verification. Carries the object ``key``."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class CorruptObjectError(IntegrityError):
    """A turn object does not decode, or does not match its manifest (size, count, checksum)."""


class ConflictingCopiesError(IntegrityError):
    """One turn is stored twice (a turn object and a segment, or two segments) and the
    copies disagree. ``key`` and ``other_key`` name both; neither is trusted over the other.

    Compaction deletes a turn object only after its segment holds the same bytes, so this
    means a turn was finished again after compaction freed its key (see docs/FORMAT.md).
    """

    def __init__(self, message: str, *, key: str, other_key: str) -> None:
        super().__init__(message, key=key)
        self.other_key = other_key


class UnsupportedFormatError(IntegrityError):
    """A turn object was written in a format version or codec this library cannot read."""


# --- storage: the service said no, or could not be reached --------------------------------


class StorageError(EventStoreError):
    """The object store failed a request. The botocore exception is chained as ``__cause__``."""

    def __init__(
        self, message: str, *, operation: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code


class StorageUnavailableError(StorageError, ConnectionError):
    """The endpoint could not be reached or failed (network fault, 5xx) after retries."""


class StorageThrottledError(StorageUnavailableError):
    """The endpoint kept answering SlowDown/503 until the retry budget ran out."""


class AccessDeniedError(StorageError, PermissionError):
    """The credentials in use may not perform the request (IAM, bucket or KMS policy)."""


class BucketNotFoundError(StorageError):
    """The configured bucket does not exist."""


class PreconditionFailedError(StorageError):
    """A conditional request's condition did not hold (HTTP 412): a ``mode="create"`` PUT
    found the key taken, or an ``If-Match`` ETag was no longer current. Callers of the
    bucket seam give it a meaning (a turn already finished, a lost update); it is not
    part of the package's top-level API."""


class ObjectLockedError(StorageError):
    """Objects could not be deleted because Object Lock (WORM) retention protects them.

    ``deleted`` and ``not_deleted`` list the keys of the batch that were and were not removed.
    """

    def __init__(
        self, message: str, *, deleted: Sequence[str] = (), not_deleted: Sequence[str] = ()
    ) -> None:
        super().__init__(message, operation="DeleteObjects", code="AccessDenied")
        self.deleted = tuple(deleted)
        self.not_deleted = tuple(not_deleted)


class UnsafeEndpointError(StorageError):
    """The endpoint does not honour a guarantee the store relies on (e.g. ``If-None-Match``)."""


# --- framework adapters and the sync facade ------------------------------------------------


class SyncFacadeError(EventStoreError, RuntimeError):
    """The sync facade cannot run a call: it is closed, or it was called from its own
    event-loop thread (where waiting for the result would deadlock). Nothing was run."""


class UnreadableItemError(EventStoreError, ValueError):
    """A framework adapter found an event of one of its own types that does not decode as
    that framework's item (written by something else, or by an incompatible version).
    Carries the ``event_id`` of the event."""

    def __init__(self, message: str, *, event_id: str) -> None:
        super().__init__(f"event {event_id}: {message}")
        self.event_id = event_id
