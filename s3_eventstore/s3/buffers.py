"""Open turns: the in-memory buffers that appends land in until ``finish_turn``."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from s3_eventstore.envelope import AgentEventEnvelope

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
    """Bytes of JSON lines buffered (what the turn object will hold uncompressed)."""
    opened_at: float
    """``time.time()`` of the turn's first append (or ``finish_turn``)."""
    last_append_at: float
    """``time.time()`` of the latest append."""

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
    opened_at: float = field(default_factory=time.time)
    last_append_at: float = 0.0
    writer: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Stable across retries of ``finish_turn``, so a retry can recognise its own object."""
    sealing: asyncio.Event | None = None
    """Set while a ``finish_turn`` is uploading; appends and other finishes wait on it."""

    def add(self, envelope: AgentEventEnvelope) -> None:
        """Buffer one event (the hot path: no I/O, no encoding)."""
        self.events.append(envelope)
        self.buffered_bytes += envelope.wire_size + 1

    def info(self) -> OpenTurnInfo:
        """A snapshot for :meth:`S3EventStore.open_turns`."""
        return OpenTurnInfo(
            self.thread_id,
            self.turn,
            len(self.events),
            self.buffered_bytes,
            self.opened_at,
            self.last_append_at or self.opened_at,
        )
