"""S3 request metrics from botocore's event hooks, attached to a client from outside.

::

    telemetry = S3RequestTelemetry()
    await store.open()                  # S3EventStore creates its client on first use
    telemetry.attach(store.client)      # or attach to a client you pass as client=

botocore emits ``before-call`` / ``after-call`` once per API call (retries happen in
between) and ``before-send`` once per HTTP attempt; ``after-call-error`` replaces
``after-call`` when no HTTP response came back at all. This module listens to those
four, so it sees every request the store makes without touching the store's code.
"""

from __future__ import annotations

import time
from typing import Any

from s3_eventstore.telemetry.instruments import Instruments

__all__ = ["S3RequestTelemetry"]

_REQUEST_METRICS = (
    "s3_eventstore.s3.requests",
    "s3_eventstore.s3.request.duration",
    "s3_eventstore.s3.retries",
    "s3_eventstore.s3.bytes.sent",
    "s3_eventstore.s3.bytes.received",
)
_STARTED = "s3_eventstore.started"


def _body_size(body: Any) -> int:
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    return 0  # a stream (multipart part): its length is in Content-Length


class S3RequestTelemetry:
    """Per-S3-operation metrics for any botocore/aiobotocore S3 client.

    Args:
        meter_provider: OpenTelemetry ``MeterProvider``; ``None`` for the global one.
    """

    def __init__(self, meter_provider: Any = None) -> None:
        self._metrics = Instruments(meter_provider, None, names=_REQUEST_METRICS)
        self._id = f"s3es-otel-{id(self)}"

    def attach(self, client: Any) -> S3RequestTelemetry:
        """Start recording ``client``'s requests; returns ``self``.

        Raises:
            TypeError: ``client`` is not a botocore client.
        """
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is None:
            raise TypeError(f"{type(client).__name__} is not a botocore client")
        events.register("before-call.s3", self._before_call, unique_id=f"{self._id}-call")
        events.register("before-send.s3", self._before_send, unique_id=f"{self._id}-send")
        events.register("after-call.s3", self._after_call, unique_id=f"{self._id}-done")
        events.register("after-call-error.s3", self._after_error, unique_id=f"{self._id}-error")
        return self

    def detach(self, client: Any) -> None:
        """Stop recording ``client``'s requests."""
        events = client.meta.events
        events.unregister("before-call.s3", unique_id=f"{self._id}-call")
        events.unregister("before-send.s3", unique_id=f"{self._id}-send")
        events.unregister("after-call.s3", unique_id=f"{self._id}-done")
        events.unregister("after-call-error.s3", unique_id=f"{self._id}-error")

    # botocore calls these with keyword arguments; unknown ones are ignored (**_).

    def _before_call(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context[_STARTED] = time.perf_counter()

    def _before_send(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        size = _body_size(getattr(request, "body", None))
        if not size and request is not None:
            size = int(request.headers.get("Content-Length", 0) or 0)
        if size:
            self._metrics["s3_eventstore.s3.bytes.sent"].add(size, {"operation": operation})

    def _after_call(
        self,
        http_response: Any = None,
        parsed: dict[str, Any] | None = None,
        model: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        operation = getattr(model, "name", "unknown")
        metadata = (parsed or {}).get("ResponseMetadata", {})
        status = int(getattr(http_response, "status_code", 0) or metadata.get("HTTPStatusCode", 0))
        outcome = "ok" if 200 <= status < 300 else "error"
        attributes: dict[str, Any] = {
            "operation": operation,
            "outcome": outcome,
            "http.response.status_code": status,
        }
        if outcome == "error":
            code = (parsed or {}).get("Error", {}).get("Code")
            attributes["error.type"] = str(code or status)
        self._finish(attributes, context)
        retries = int(metadata.get("RetryAttempts", 0) or 0)
        if retries:
            self._metrics["s3_eventstore.s3.retries"].add(retries, {"operation": operation})
        headers = metadata.get("HTTPHeaders", {})
        received = int(headers.get("content-length", 0) or 0)
        if received:
            self._metrics["s3_eventstore.s3.bytes.received"].add(received, {"operation": operation})

    def _after_error(
        self,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        event_name: str = "",
        **_: Any,
    ) -> None:
        attributes = {
            "operation": event_name.rsplit(".", 1)[-1] or "unknown",
            "outcome": "error",
            "error.type": type(exception).__name__ if exception is not None else "unknown",
        }
        self._finish(attributes, context)

    def _finish(self, attributes: dict[str, Any], context: dict[str, Any] | None) -> None:
        self._metrics["s3_eventstore.s3.requests"].add(1, attributes)
        started = (context or {}).get(_STARTED)
        if isinstance(started, float):
            self._metrics["s3_eventstore.s3.request.duration"].record(
                time.perf_counter() - started, attributes
            )
