"""ObservedEventStore: spans and metrics around any EventStore, over its public API."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents
from s3_eventstore.errors import ConfigurationError, TurnAlreadyFinishedError
from s3_eventstore.store import EventStore
from s3_eventstore.telemetry.instruments import Instruments, hash_thread_id

__all__ = ["ObservedEventStore"]

_T = TypeVar("_T")

_STORE_METRICS = (
    "s3_eventstore.store.calls",
    "s3_eventstore.store.duration",
    "s3_eventstore.finish_turn.duration",
    "s3_eventstore.events.written",
    "s3_eventstore.events.read",
    "s3_eventstore.bytes.written",
    "s3_eventstore.bytes.read",
    "s3_eventstore.buffer.bytes",
)


class ObservedEventStore(EventStore):
    """Wraps ``inner``: every call gets a span and its metrics, then goes to ``inner``.

    Spans are named ``s3_eventstore.<operation>`` and carry ``s3_eventstore.thread``
    (the hashed thread id by default), ``s3_eventstore.turn`` where there is one, and
    ``s3_eventstore.events`` for reads. Metrics: see docs/ADAPTERS.md.

    Args:
        inner: The store to observe.
        meter_provider: OpenTelemetry ``MeterProvider``; ``None`` for the global one.
        tracer_provider: ``TracerProvider``; ``None`` for the global one.
        thread_id: How spans name the thread: ``"hash"`` (default, 16 hex digits of
            SHA-256 or of HMAC with ``thread_id_key``), ``"raw"``, or ``"omit"``.
        thread_id_key: HMAC key for ``"hash"``.
        trace_appends: Also open a span per ``append`` (off by default: an agent appends
            thousands of deltas per turn; appends are always counted).

    Raises:
        ConfigurationError: ``inner`` is not an EventStore, or ``thread_id`` is unknown.
    """

    def __init__(
        self,
        inner: EventStore,
        *,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        thread_id: Literal["hash", "raw", "omit"] = "hash",
        thread_id_key: bytes | None = None,
        trace_appends: bool = False,
    ) -> None:
        if not isinstance(inner, EventStore):
            raise ConfigurationError(f"expected an EventStore, not {type(inner).__name__}")
        if thread_id not in ("hash", "raw", "omit"):
            raise ConfigurationError(f"thread_id must be hash, raw or omit, not {thread_id!r}")
        self.inner = inner
        """The observed store."""
        self._thread_mode = thread_id
        self._thread_key = thread_id_key
        self._trace_appends = trace_appends
        self._open_bytes: dict[tuple[str, int], int] = {}
        self._metrics = Instruments(meter_provider, tracer_provider, names=_STORE_METRICS)
        self._metrics.observe(self._buffer_reading)

    def _buffer_reading(self) -> list[tuple[float, dict[str, Any]]]:
        buffered = getattr(self.inner, "buffered_bytes", None)
        if not isinstance(buffered, int):
            buffered = sum(self._open_bytes.values())
        return [(float(buffered), {})]

    def _thread_attributes(self, thread_id: object, turn: object = None) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if isinstance(thread_id, str) and self._thread_mode != "omit":
            attributes["s3_eventstore.thread"] = (
                thread_id
                if self._thread_mode == "raw"
                else hash_thread_id(thread_id, self._thread_key)
            )
        if type(turn) is int:
            attributes["s3_eventstore.turn"] = turn
        return attributes

    async def _observe(
        self,
        operation: str,
        call: Callable[[], Awaitable[_T]],
        attributes: dict[str, Any],
        *,
        traced: bool = True,
    ) -> _T:
        started = time.perf_counter()
        outcome: dict[str, Any] = {"operation": operation, "outcome": "ok"}
        try:
            if traced:
                with self._metrics.span(f"s3_eventstore.{operation}", attributes) as span:
                    result = await call()
                    count = _event_count(result)
                    if count is not None:
                        span.set_attribute("s3_eventstore.events", count)
            else:
                result = await call()
        except BaseException as err:
            outcome["outcome"] = "error"
            outcome["error.type"] = type(err).__name__
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._metrics["s3_eventstore.store.calls"].add(1, outcome)
            self._metrics["s3_eventstore.store.duration"].record(elapsed, outcome)
            if operation == "finish_turn":
                finish = {k: v for k, v in outcome.items() if k != "operation"}
                self._metrics["s3_eventstore.finish_turn.duration"].record(elapsed, finish)
        self._count_read(result)
        return result

    def _count_read(self, result: object) -> None:
        events = _events_of(result)
        if events:
            self._metrics["s3_eventstore.events.read"].add(len(events))
            self._metrics["s3_eventstore.bytes.read"].add(sum(e.wire_size + 1 for e in events))

    # --- the contract -----------------------------------------------------------------

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """See :meth:`EventStore.append`."""
        await self._observe(
            "append",
            lambda: self.inner.append(thread_id, turn, envelope),
            self._thread_attributes(thread_id, turn),
            traced=self._trace_appends,
        )
        size = envelope.wire_size + 1
        self._metrics["s3_eventstore.events.written"].add(1)
        self._metrics["s3_eventstore.bytes.written"].add(size)
        key = (thread_id, turn)
        self._open_bytes[key] = self._open_bytes.get(key, 0) + size

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """See :meth:`EventStore.finish_turn`."""
        try:
            await self._observe(
                "finish_turn",
                lambda: self.inner.finish_turn(thread_id, turn),
                self._thread_attributes(thread_id, turn),
            )
        except TurnAlreadyFinishedError:
            self._open_bytes.pop((thread_id, turn), None)
            raise
        self._open_bytes.pop((thread_id, turn), None)

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """See :meth:`EventStore.get_turn`."""
        return await self._observe(
            "get_turn",
            lambda: self.inner.get_turn(thread_id, turn),
            self._thread_attributes(thread_id, turn),
        )

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """See :meth:`EventStore.get_turns`."""
        return await self._observe(
            "get_turns", lambda: self.inner.get_turns(thread_id), self._thread_attributes(thread_id)
        )

    async def clear(self, thread_id: str) -> None:
        """See :meth:`EventStore.clear`."""
        await self._observe(
            "clear", lambda: self.inner.clear(thread_id), self._thread_attributes(thread_id)
        )
        for key in [key for key in self._open_bytes if key[0] == thread_id]:
            del self._open_bytes[key]

    async def get_events(self, thread_id: str) -> list[AgentEventEnvelope]:
        """See :meth:`EventStore.get_events`."""
        return await self._observe(
            "get_events",
            lambda: self.inner.get_events(thread_id),
            self._thread_attributes(thread_id),
        )

    async def event_count(self, thread_id: str) -> int:
        """See :meth:`EventStore.event_count`."""
        return await self._observe(
            "event_count",
            lambda: self.inner.event_count(thread_id),
            self._thread_attributes(thread_id),
        )

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """See :meth:`EventStore.get_events_since`."""
        return await self._observe(
            "get_events_since",
            lambda: self.inner.get_events_since(thread_id, offset),
            self._thread_attributes(thread_id),
        )

    # --- optional capabilities of the inner store, passed through -------------------------

    async def discard_turn(self, thread_id: str, turn: int) -> tuple[AgentEventEnvelope, ...]:
        """``inner.discard_turn`` when the inner store has it (S3), else ``()``.

        Raises:
            InvalidThreadIdError: bad thread id.
            InvalidTurnError: bad turn number.
            StorageError: as ``S3EventStore.discard_turn``.
        """
        discard = getattr(self.inner, "discard_turn", None)
        self._open_bytes.pop((thread_id, turn), None)
        if discard is None:
            return ()
        result: tuple[AgentEventEnvelope, ...] = await self._observe(
            "discard_turn", lambda: discard(thread_id, turn), self._thread_attributes(thread_id)
        )
        return result

    async def flush(self) -> None:
        """See :meth:`EventStore.flush`: the inner store's open turns are persisted.

        Raises:
            TurnAlreadyFinishedError: another writer finished one of the turns.
            StorageError: the backend failed; the turns stay open, nothing is lost.
        """
        await self.inner.flush()

    async def close(self, *, flush: bool = True) -> None:
        """``await inner.close()`` when the inner store has one (``flush=False`` is passed
        on; the default is the inner store's own, which persists open turns); an inner
        store with an awaitable ``aclose`` (``LoopBoundEventStore``) is closed by it."""
        close = getattr(self.inner, "aclose", None) or getattr(self.inner, "close", None)
        if close is not None:
            result = close() if flush else close(flush=False)
            if isinstance(result, Awaitable):
                await result


def _events_of(result: object) -> list[AgentEventEnvelope]:
    if isinstance(result, StoredTurnEvents):
        return list(result.events)
    if isinstance(result, list) and result:
        if isinstance(result[0], StoredTurnEvents):
            return StoredTurnEvents.events_of(result)
        if isinstance(result[0], AgentEventEnvelope):
            return result
    return []


def _event_count(result: object) -> int | None:
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    if isinstance(result, StoredTurnEvents | list):
        return len(_events_of(result))
    return None
