"""Open turns: the in-memory buffers that appends land in until ``finish_turn``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s3_eventstore.s3.suspension import Persistence

if TYPE_CHECKING:
    import asyncio

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.s3.multipart import StreamedTurn

__all__ = ["OpenTurn", "OpenTurnInfo"]


@dataclass(frozen=True, slots=True)
class OpenTurnInfo:
    """A snapshot of one open turn, for workers that drop abandoned turns."""

    thread_id: str
    """The thread."""
    turn: int
    """The turn number."""
    events: int
    """Events buffered."""
    buffered_bytes: int
    """Bytes of JSON lines appended (what the turn object will hold uncompressed)."""
    opened_at: float
    """``time.time()`` of the turn's first append (or ``finish_turn``)."""
    last_append_at: float
    """``time.time()`` of the latest append."""
    streaming: bool = False
    """True when the turn outgrew ``max_turn_buffer_bytes`` and is being uploaded in parts
    (its events are not held in memory; reads of it raise ``TurnStreamingError``)."""
    memory_bytes: int = 0
    """Bytes this turn holds in memory now (for a streamed turn: compressed, not uploaded)."""

    @property
    def idle_seconds(self) -> float:
        """Seconds since the last append."""
        return max(0.0, time.time() - self.last_append_at)


@dataclass(slots=True, eq=False)
class OpenTurn:
    """One open turn's buffer, and whether a ``finish_turn`` is sealing it right now."""

    thread_id: str
    turn: int
    events: list[AgentEventEnvelope] = field(default_factory=list)
    buffered_bytes: int = 0
    held_bytes: int = 0
    """Memory the buffered envelopes hold (their ``memory_size``): what the store's
    ``max_buffer_bytes`` budget counts for this turn."""
    opened_at: float = field(default_factory=time.time)
    last_append_at: float = 0.0
    _writer: str = ""
    """Drawn on first use (see :meth:`writer`): a random id per turn costs microseconds,
    which a turn that is only appended to should not pay."""
    sealing: asyncio.Event | None = None
    """Set while a ``finish_turn`` is uploading; appends and other finishes wait on it."""
    stream: StreamedTurn | None = None
    """Set once the turn outgrew ``max_turn_buffer_bytes``: ``events`` is then empty and
    every further event goes straight to the stream's multipart upload."""
    persistence: Persistence = field(default_factory=Persistence)
    """What this store knows of the turn's key (an open object it wrote or read, its
    attempts); ``events`` are the events not persisted yet (docs/FORMAT.md 11.4)."""
    pending_since: float = 0.0
    """``time.time()`` of the oldest unpersisted event (0: none)."""

    def take_front(self, count: int) -> int:
        """Drop the first ``count`` events (now persisted); returns the memory freed (the
        ``held_bytes`` they accounted for: the unit of the store's buffer budget)."""
        if count <= 0:
            return 0
        dropped = self.events[:count]
        del self.events[:count]
        wire = sum(event.wire_size + 1 for event in dropped)
        held = sum(event.memory_size for event in dropped)
        self.buffered_bytes = max(0, self.buffered_bytes - wire)
        self.held_bytes = max(0, self.held_bytes - held)
        self.pending_since = time.time() if self.events else 0.0
        return held

    @property
    def writer(self) -> str:
        """Random id of this turn's ``finish_turn``; stable across its retries, so a retry
        can recognise its own object."""
        if not self._writer:
            self._writer = os.urandom(16).hex()
        return self._writer

    def add(self, envelope: AgentEventEnvelope) -> None:
        """Buffer one event (the hot path: no I/O, no encoding)."""
        self.events.append(envelope)
        self.buffered_bytes += envelope.wire_size + 1
        self.held_bytes += envelope.memory_size
        self.last_append_at = time.time()

    @property
    def event_count(self) -> int:
        """Events appended so far, streamed or buffered."""
        return self.stream.encoder.events if self.stream is not None else len(self.events)

    def info(self) -> OpenTurnInfo:
        """A snapshot for :meth:`S3EventStore.open_turns`."""
        stream = self.stream
        return OpenTurnInfo(
            self.thread_id,
            self.turn,
            self.event_count,
            stream.encoder.raw_bytes if stream is not None else self.buffered_bytes,
            self.opened_at,
            self.last_append_at or self.opened_at,
            streaming=stream is not None,
            memory_bytes=stream.memory_bytes if stream is not None else self.held_bytes,
        )
