"""The memory budget of one store's open turns (``max_buffer_bytes``)."""

from __future__ import annotations

from s3_eventstore.errors import BufferLimitError

__all__ = ["BufferBudget"]


class BufferBudget:
    """Bytes held in memory by one store's open turns, against ``max_buffer_bytes``.

    Buffered JSON lines of ordinary turns and the not-yet-uploaded compressed bytes of
    streamed turns both count, so the limit bounds what the process actually holds.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """The configured ``max_buffer_bytes``."""
        self.used = 0
        """Bytes held right now."""

    def reserve(self, size: int) -> None:
        """Account ``size`` more bytes, refusing to go over the limit.

        Raises:
            BufferLimitError: ``used + size`` exceeds the limit; nothing was accounted.
        """
        if self.used + size > self.limit:
            raise BufferLimitError(
                f"buffering {size} more bytes would exceed max_buffer_bytes={self.limit} "
                f"({self.used} bytes are buffered in open turns); the event was not "
                f"recorded: finish or discard open turns first",
                limit=self.limit,
                buffered=self.used,
            )
        self.used += size

    def force(self, size: int) -> None:
        """Account bytes that must be held whatever the limit (compressed output in flight)."""
        self.used += size

    def release(self, size: int) -> None:
        """Give back bytes no longer held."""
        self.used = max(0, self.used - size)
