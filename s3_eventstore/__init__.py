"""s3-eventstore: an AI agent's turn-scoped event stream, archived in object storage.

``append`` buffers events of an open turn in memory; ``finish_turn`` writes the turn
as one immutable zstd JSON-lines object; reads list a thread's objects and fetch
them in turn order. See README.md and docs/FORMAT.md.
"""

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    BufferLimitError,
    ConfigurationError,
    ConflictingCopiesError,
    CorruptObjectError,
    EventStoreError,
    IntegrityError,
    InvalidEnvelopeError,
    InvalidInputError,
    InvalidThreadIdError,
    InvalidTurnError,
    ObjectLockedError,
    StorageError,
    StorageThrottledError,
    StorageUnavailableError,
    SyncFacadeError,
    TurnAlreadyFinishedError,
    TurnFinishedError,
    TurnStateError,
    TurnStreamingError,
    UnreadableItemError,
    UnsafeEndpointError,
    UnsupportedFormatError,
)
from s3_eventstore.format.manifest import FORMAT_VERSION, TurnManifest
from s3_eventstore.memory import InMemoryEventStore
from s3_eventstore.s3 import OpenTurnInfo, S3EventStore
from s3_eventstore.store import EventStore

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "AccessDeniedError",
    "AgentEventEnvelope",
    "BucketNotFoundError",
    "BufferLimitError",
    "ConfigurationError",
    "ConflictingCopiesError",
    "CorruptObjectError",
    "EventStore",
    "EventStoreError",
    "InMemoryEventStore",
    "IntegrityError",
    "InvalidEnvelopeError",
    "InvalidInputError",
    "InvalidThreadIdError",
    "InvalidTurnError",
    "ObjectLockedError",
    "OpenTurnInfo",
    "S3EventStore",
    "StorageError",
    "StorageThrottledError",
    "StorageUnavailableError",
    "StoredTurnEvents",
    "SyncFacadeError",
    "TurnAlreadyFinishedError",
    "TurnFinishedError",
    "TurnManifest",
    "TurnStateError",
    "TurnStreamingError",
    "UnreadableItemError",
    "UnsafeEndpointError",
    "UnsupportedFormatError",
    "__version__",
]
