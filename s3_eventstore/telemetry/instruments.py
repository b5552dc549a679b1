"""The metric names, the instruments behind them, and the no-op fallback without OpenTelemetry."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.metadata
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

__all__ = ["METRICS", "Instruments", "hash_thread_id", "otel_available"]

try:  # optional dependency: everything below degrades to no-ops without it
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.metrics import CallbackOptions, Observation

    _HAVE_OTEL = True
except ImportError:  # exercised by test_telemetry's no-otel subprocess
    _HAVE_OTEL = False

SCOPE: Final = "s3_eventstore"

METRICS: Final[Mapping[str, tuple[str, str, str]]] = {
    # name: (instrument kind, unit, description); attributes in docs/ADAPTERS.md
    "s3_eventstore.store.calls": ("counter", "{call}", "Store calls by operation and outcome"),
    "s3_eventstore.store.duration": ("histogram", "s", "Store call latency by operation"),
    "s3_eventstore.finish_turn.duration": ("histogram", "s", "finish_turn latency"),
    "s3_eventstore.events.written": ("counter", "{event}", "Envelopes appended"),
    "s3_eventstore.events.read": ("counter", "{event}", "Envelopes returned by reads"),
    "s3_eventstore.bytes.written": ("counter", "By", "JSON-line bytes appended"),
    "s3_eventstore.bytes.read": ("counter", "By", "JSON-line bytes returned by reads"),
    "s3_eventstore.buffer.bytes": ("gauge", "By", "Bytes buffered in open turns"),
    "s3_eventstore.s3.requests": ("counter", "{request}", "S3 API calls by operation, outcome"),
    "s3_eventstore.s3.request.duration": ("histogram", "s", "S3 API call latency, retries in"),
    "s3_eventstore.s3.retries": ("counter", "{retry}", "S3 HTTP attempts beyond the first"),
    "s3_eventstore.s3.bytes.sent": ("counter", "By", "S3 request body bytes"),
    "s3_eventstore.s3.bytes.received": ("counter", "By", "S3 response body bytes"),
}
"""Every metric this library records: ``name -> (kind, unit, description)``."""


def _version() -> str:
    try:
        return importlib.metadata.version("s3-eventstore")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def otel_available() -> bool:
    """True when ``opentelemetry-api`` is importable (else telemetry is a no-op)."""
    return _HAVE_OTEL


def hash_thread_id(thread_id: str, key: bytes | None = None) -> str:
    """A stable, non-reversible stand-in for a thread id in telemetry: 16 hex digits of
    SHA-256, or of HMAC-SHA-256 with ``key`` (so that guessable ids cannot be confirmed
    by hashing candidates)."""
    data = thread_id.encode("utf-8", "surrogatepass")
    if key is None:
        return hashlib.sha256(data).hexdigest()[:16]
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


class _Null:
    """Stands in for a counter, histogram or span when OpenTelemetry is absent."""

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Ignore."""

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Ignore."""

    def set_attribute(self, key: str, value: Any) -> None:
        """Ignore."""

    def record_exception(self, exception: BaseException) -> None:
        """Ignore."""


class Instruments:
    """The instruments of one meter and the tracer of one provider.

    Args:
        meter_provider: An OpenTelemetry ``MeterProvider``; ``None`` for the global one.
        tracer_provider: A ``TracerProvider``; ``None`` for the global one.
        names: The metric names to create (keys of :data:`METRICS`).
    """

    def __init__(
        self, meter_provider: Any = None, tracer_provider: Any = None, *, names: Iterable[str]
    ) -> None:
        self._instruments: dict[str, Any] = {}
        self._gauge_sources: list[Callable[[], Iterable[tuple[float, dict[str, Any]]]]] = []
        if not _HAVE_OTEL:
            self._tracer: Any = None
            return
        version = _version()
        meter = _otel_metrics.get_meter(SCOPE, version, meter_provider)
        self._tracer = _otel_trace.get_tracer(SCOPE, version, tracer_provider)
        for name in names:
            kind, unit, description = METRICS[name]
            if kind == "counter":
                self._instruments[name] = meter.create_counter(name, unit, description)
            elif kind == "histogram":
                self._instruments[name] = meter.create_histogram(name, unit, description)
            else:
                self._instruments[name] = meter.create_observable_gauge(
                    name, [self._observe], unit, description
                )

    def __getitem__(self, name: str) -> Any:
        """The instrument called ``name`` (a no-op one when OpenTelemetry is absent)."""
        return self._instruments.get(name) or _Null()

    def observe(self, source: Callable[[], Iterable[tuple[float, dict[str, Any]]]]) -> None:
        """Add a source of ``(value, attributes)`` readings for the observable gauge."""
        self._gauge_sources.append(source)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, attributes)
            for source in self._gauge_sources
            for value, attributes in source()
        ]

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any]) -> Iterator[Any]:
        """A span named ``name`` (exceptions recorded, status set), or a no-op one."""
        if self._tracer is None:
            yield _Null()
            return
        with self._tracer.start_as_current_span(name, attributes=dict(attributes)) as span:
            yield span
