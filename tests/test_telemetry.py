"""Metrics and spans, read back with the OpenTelemetry SDK's in-memory reader and exporter."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from s3_eventstore import (
    AgentEventEnvelope,
    ConfigurationError,
    InMemoryEventStore,
    S3EventStore,
    StorageError,
    TurnAlreadyFinishedError,
)
from s3_eventstore.telemetry import (
    METRICS,
    ObservedEventStore,
    S3RequestTelemetry,
    hash_thread_id,
    otel_available,
)
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

THREAD = "customer-4711@example.com"


class Telemetry:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value or histogram count) of every data point of ``name``."""
        found = []
        for resource in self.reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            value = getattr(point, "count", None)
                            if value is None:
                                value = point.value
                            found.append((dict(point.attributes), value))
        return found

    def total(self, name: str, **attributes: Any) -> Any:
        return sum(
            value
            for attrs, value in self.points(name)
            if all(attrs.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    kit = Telemetry()
    yield kit
    kit.meters.shutdown()
    kit.tracers.shutdown()


def envelope(sequence: int) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(
        "text", {"message_id": "m", "text": "hello"}, sequence=sequence
    )


async def test_store_metrics_and_spans_over_s3(
    telemetry: Telemetry, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with S3EventStore(
        bucket, "otel", endpoint_url=s3_server.endpoint_url, session=s3_server.session()
    ) as s3:
        store = ObservedEventStore(
            s3, meter_provider=telemetry.meters, tracer_provider=telemetry.tracers
        )
        written = [envelope(i) for i in range(3)]
        for event in written:
            await store.append(THREAD, 1, event)
        assert telemetry.total("s3_eventstore.buffer.bytes") == s3.buffered_bytes > 0
        await store.finish_turn(THREAD, 1)
        assert telemetry.total("s3_eventstore.buffer.bytes") == 0
        with pytest.raises(TurnAlreadyFinishedError):
            await store.finish_turn(THREAD, 1)
        turns = await store.get_turns(THREAD)
        assert await store.get_turn(THREAD, 7) is None
        assert await store.event_count(THREAD) == 3

    size = sum(e.wire_size + 1 for e in written)
    assert telemetry.total("s3_eventstore.store.calls", operation="append", outcome="ok") == 3
    assert telemetry.total("s3_eventstore.store.calls", operation="finish_turn", outcome="ok") == 1
    assert (
        telemetry.total(
            "s3_eventstore.store.calls",
            operation="finish_turn",
            outcome="error",
            **{"error.type": "TurnAlreadyFinishedError"},
        )
        == 1
    )
    assert telemetry.total("s3_eventstore.finish_turn.duration") == 2  # histogram count
    assert telemetry.total("s3_eventstore.store.duration", operation="get_turns") == 1
    assert telemetry.total("s3_eventstore.events.written") == 3
    assert telemetry.total("s3_eventstore.bytes.written") == size
    assert telemetry.total("s3_eventstore.events.read") == len(turns[0].events) == 3
    assert telemetry.total("s3_eventstore.bytes.read") == size

    spans = telemetry.exporter.get_finished_spans()
    names = [span.name for span in spans]
    assert names == [
        "s3_eventstore.finish_turn",
        "s3_eventstore.finish_turn",
        "s3_eventstore.get_turns",
        "s3_eventstore.get_turn",
        "s3_eventstore.event_count",
    ]  # appends are counted, not traced, by default
    hashed = hash_thread_id(THREAD)
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["s3_eventstore.thread"] == hashed
        assert THREAD not in str(dict(span.attributes))
    assert spans[0].status.status_code is StatusCode.UNSET
    assert spans[1].status.status_code is StatusCode.ERROR
    assert spans[1].events[0].name == "exception"
    assert spans[2].attributes["s3_eventstore.events"] == 3  # type: ignore[index]


async def test_thread_id_modes_and_append_spans(telemetry: Telemetry) -> None:
    def store(**options: Any) -> ObservedEventStore:
        return ObservedEventStore(
            InMemoryEventStore(),
            meter_provider=telemetry.meters,
            tracer_provider=telemetry.tracers,
            **options,
        )

    await store(thread_id="raw", trace_appends=True).append(THREAD, 1, envelope(0))
    await store(thread_id="omit").get_turns(THREAD)
    await store(thread_id_key=b"secret").get_turns(THREAD)
    raw, omitted, keyed = telemetry.exporter.get_finished_spans()
    assert raw.name == "s3_eventstore.append"
    assert raw.attributes == {"s3_eventstore.thread": THREAD, "s3_eventstore.turn": 1}
    assert "s3_eventstore.thread" not in (omitted.attributes or {})
    assert keyed.attributes["s3_eventstore.thread"] == hash_thread_id(THREAD, b"secret")  # type: ignore[index]
    assert hash_thread_id(THREAD, b"secret") != hash_thread_id(THREAD)
    with pytest.raises(ConfigurationError):
        store(thread_id="plain")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        ObservedEventStore(object())  # type: ignore[arg-type]


async def test_observed_store_is_a_faithful_store(telemetry: Telemetry) -> None:
    """The contract itself: tests/test_conformance_wrappers.py. Here: the extras."""
    inner = InMemoryEventStore()
    store = ObservedEventStore(inner, meter_provider=telemetry.meters)
    await store.append("t", 1, envelope(0))
    assert await store.discard_turn("t", 1) == ()  # the in-memory store cannot discard
    await store.finish_turn("t", 1)
    assert await store.get_events_since("t", 0) == await inner.get_events("t")


async def test_s3_request_metrics_with_retries_and_failures(
    telemetry: Telemetry, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    with FaultProxy(s3_server.endpoint_url, seed=17) as proxy:
        async with S3EventStore(
            bucket,
            "otel",
            endpoint_url=proxy.endpoint_url,
            session=s3_server.session(),
            max_attempts=3,
            check_endpoint=False,
        ) as s3:
            await s3.open()
            S3RequestTelemetry(telemetry.meters).attach(s3.client)
            await s3.append(THREAD, 1, envelope(0))
            proxy.plan_next(FaultKind.SLOW_DOWN, count=1, match="PutObject")
            await s3.finish_turn(THREAD, 1)  # one 503, then success
            assert await s3.get_turn(THREAD, 9) is None  # a 404 (+ a LIST)
            proxy.plan_next(FaultKind.INTERNAL_ERROR, count=3, match="ListObjectsV2")
            with pytest.raises(StorageError):
                await s3.get_turns(THREAD)

    requests = "s3_eventstore.s3.requests"
    assert telemetry.total(requests, operation="PutObject", outcome="ok") == 1
    assert telemetry.total("s3_eventstore.s3.retries", operation="PutObject") == 1
    assert telemetry.total("s3_eventstore.s3.retries", operation="ListObjectsV2") == 2
    assert telemetry.total(requests, operation="GetObject", outcome="error") == 1
    assert (
        telemetry.total(
            requests,
            operation="ListObjectsV2",
            outcome="error",
            **{"http.response.status_code": 500},
        )
        == 1
    )
    assert telemetry.total("s3_eventstore.s3.request.duration", operation="PutObject") == 1
    assert telemetry.total("s3_eventstore.s3.bytes.sent", operation="PutObject") > 0
    assert telemetry.total("s3_eventstore.s3.bytes.received", operation="ListObjectsV2") > 0
    recorded = {
        metric.name
        for resource in telemetry.reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert recorded <= set(METRICS)


def test_attach_refuses_what_is_not_a_client() -> None:
    with pytest.raises(TypeError):
        S3RequestTelemetry().attach(object())


def test_without_opentelemetry_everything_is_a_no_op() -> None:
    """Block the import of opentelemetry: the wrapper still works and records nothing."""
    assert otel_available()
    code = """
import asyncio, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
from s3_eventstore import AgentEventEnvelope, InMemoryEventStore
from s3_eventstore.telemetry import ObservedEventStore, S3RequestTelemetry, otel_available

async def main():
    store = ObservedEventStore(InMemoryEventStore())
    await store.append("t", 1, AgentEventEnvelope.create("x", {}, sequence=0))
    await store.finish_turn("t", 1)
    print(otel_available(), len(await store.get_events("t")), "opentelemetry" in sys.modules)

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "1", "False"]
