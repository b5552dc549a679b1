"""Counting S3 requests by operation through botocore's event hooks.

Counts HTTP attempts (``before-send``), so retries show up, and logical calls
(``before-call``) separately. Used by the demo and benchmarks for "requests per
turn", and by tests as an independent witness of what the store sent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["RequestCounter"]


class RequestCounter:
    """Per-operation counts of S3 calls and HTTP attempts made by one client."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        """Logical API calls by operation name (``PutObject``...)."""
        self.attempts: Counter[str] = Counter()
        """HTTP requests sent by operation name, retries included."""

    def attach(self, client: Any) -> RequestCounter:
        """Register on a botocore/aiobotocore client's event system; returns ``self``."""
        events = client.meta.events
        events.register("before-call.s3", self._on_call, unique_id=f"s3es-call-{id(self)}")
        events.register("before-send.s3", self._on_send, unique_id=f"s3es-send-{id(self)}")
        return self

    def detach(self, client: Any) -> None:
        """Stop counting on ``client``."""
        events = client.meta.events
        events.unregister("before-call.s3", unique_id=f"s3es-call-{id(self)}")
        events.unregister("before-send.s3", unique_id=f"s3es-send-{id(self)}")

    def _on_call(self, model: Any = None, **_: Any) -> None:
        if model is not None:
            self.calls[model.name] += 1

    def _on_send(self, event_name: str = "", **_: Any) -> None:
        self.attempts[event_name.rsplit(".", 1)[-1]] += 1

    def reset(self) -> None:
        """Forget every count."""
        self.calls.clear()
        self.attempts.clear()

    def snapshot(self) -> dict[str, int]:
        """HTTP attempts by operation, as a plain sorted dict."""
        return dict(sorted(self.attempts.items()))

    @property
    def total(self) -> int:
        """All HTTP attempts."""
        return sum(self.attempts.values())

    def __repr__(self) -> str:
        """``RequestCounter(total=4, GetObject=3, ListObjectsV2=1)``: HTTP attempts by
        operation (retries included), plus the logical calls when retries made them differ."""
        counts = "".join(f", {name}={count}" for name, count in self.snapshot().items())
        calls = dict(sorted(self.calls.items()))
        retried = f", calls={calls}" if calls and calls != self.snapshot() else ""
        return f"RequestCounter(total={self.total}{counts}{retried})"
