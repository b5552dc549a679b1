"""Metrics and traces through OpenTelemetry (extra ``otel``: ``opentelemetry-api``).

* :class:`ObservedEventStore` wraps any :class:`~s3_eventstore.EventStore` (public API
  only): a span around every store call and counters/histograms per operation.
* :class:`S3RequestTelemetry` hooks into an S3 client's botocore events from outside
  the store: requests by S3 operation and outcome, retries, bytes on the wire.

Without ``opentelemetry-api`` installed both are no-ops (calls still go through).
With the API but no SDK configured, OpenTelemetry's own no-op providers apply. Metric
names and attributes are listed in docs/ADAPTERS.md ("Metrics and traces").
"""

from s3_eventstore.telemetry.instruments import METRICS, hash_thread_id, otel_available
from s3_eventstore.telemetry.observed import ObservedEventStore
from s3_eventstore.telemetry.requests import S3RequestTelemetry

__all__ = [
    "METRICS",
    "ObservedEventStore",
    "S3RequestTelemetry",
    "hash_thread_id",
    "otel_available",
]
