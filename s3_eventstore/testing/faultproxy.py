"""FaultProxy: an HTTP/1.1 proxy on loopback that makes an S3 endpoint misbehave on purpose.

Point a store at :attr:`FaultProxy.endpoint_url` instead of the server's URL and the
proxy forwards every request to the real server, except those it picks to fault:

* ``internal_error`` / ``slow_down``: answer 500 ``InternalError`` / 503 ``SlowDown``
  with a proper S3 XML error body; the request never reaches the server.
* ``reset``: read the request, then reset the connection (TCP RST) without forwarding.
* ``drop_response``: forward the request (the server applies a write), then reset the
  connection instead of answering: the client never hears that its write succeeded.
* ``delay``: hold the request for :attr:`FaultProxy.delay_seconds` (set it past the
  client's read timeout), then forward it. The client has given up by then, so a
  write may land *after* the client retried it - the nastiest ordering S3 allows.
* ``trickle``: forward, then send the response head at once and its body one byte
  every :attr:`FaultProxy.trickle_seconds` (a body that never stalls long enough for a
  read timeout, yet takes forever).
* ``strip_conditions``: forward without ``If-None-Match``/``If-Match`` headers, as a
  server that ignores conditional writes does.
* ``bad_request``: answer 400 ``InvalidRequest`` without forwarding (plan it with a
  predicate, e.g. on ``x-amz-checksum-*`` headers, to play a server that rejects them).

Faults are picked per request, either planned (:meth:`FaultProxy.plan_next`, first
matching plan wins) or at random with probability :attr:`FaultProxy.rate` from a
``random.Random(seed)``. The sequence of decisions is deterministic for a seed; which
request gets which decision depends on arrival order when clients run concurrently.
:meth:`FaultProxy.hold_next` parks one request until the test releases it, so races
are set up with events, not sleeps.

The proxy runs its own event loop in a daemon thread, so it serves synchronous and
asynchronous clients alike and keeps serving while the test's loop is blocked. It
listens on 127.0.0.1 only and is meant for tests: bodies are buffered in memory.

Upstream, every forwarded request gets a fresh connection marked ``Connection: close``
(simple and faithful: the bytes of the request body are forwarded untouched,
chunked or not). Downstream, client connections are kept alive across requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import socket
import struct
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Self
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

__all__ = ["ALL_KINDS", "FaultKind", "FaultProxy", "Gate", "ProxyStats", "RequestInfo", "classify"]

_MAX_HEADER_BYTES: Final = 1 << 20
_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "expect"})


class FaultKind(enum.StrEnum):
    """What the proxy does to a faulted request."""

    INTERNAL_ERROR = "internal_error"
    """500 InternalError, not forwarded."""
    SLOW_DOWN = "slow_down"
    """503 SlowDown, not forwarded."""
    RESET = "reset"
    """Connection reset before forwarding."""
    DROP_RESPONSE = "drop_response"
    """Forwarded and applied; the response is replaced by a connection reset."""
    DELAY = "delay"
    """Held for ``delay_seconds``, then forwarded (the client has usually given up)."""
    TRICKLE = "trickle"
    """Forwarded; the response body is sent one byte every ``trickle_seconds``."""
    STRIP_CONDITIONS = "strip_conditions"
    """Forwarded without its ``If-None-Match``/``If-Match`` headers."""
    BAD_REQUEST = "bad_request"
    """400 InvalidRequest, not forwarded."""


ALL_KINDS: Final = (
    FaultKind.INTERNAL_ERROR,
    FaultKind.SLOW_DOWN,
    FaultKind.RESET,
    FaultKind.DROP_RESPONSE,
    FaultKind.DELAY,
)
"""The kinds random faults are drawn from by default: transient faults a client retries."""
_CONDITIONS: Final = frozenset({"if-none-match", "if-match"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the proxy knows about one request when it decides its fate."""

    method: str
    """HTTP method."""
    target: str
    """Request target as sent (path and query)."""
    operation: str
    """S3 operation guessed from method, path and query (``PutObject``...)."""
    headers: tuple[tuple[str, str], ...]
    """Headers as sent, names as spelled by the client."""

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


def classify(method: str, target: str) -> str:
    """Name the S3 operation of a path-style request (best effort, for counting and matching)."""
    path, _, query = target.partition("?")
    params = parse_qs(query, keep_blank_values=True)
    bucket_and_key = path.lstrip("/").split("/", 1)
    has_key = len(bucket_and_key) == 2 and bucket_and_key[1] != ""
    if method == "PUT":
        if not has_key:
            return "CreateBucket"
        return "UploadPart" if "partNumber" in params else "PutObject"
    if method == "GET":
        if has_key:
            return "GetObject"
        if "list-type" in params:
            return "ListObjectsV2"
        return "ListObjectVersions" if "versions" in params else "ListObjects"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "POST":
        if "delete" in params:
            return "DeleteObjects"
        if "uploads" in params:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if "uploadId" in params else "Post"
    if method == "DELETE":
        if not has_key:
            return "DeleteBucket"
        return "AbortMultipartUpload" if "uploadId" in params else "DeleteObject"
    return method


def _matches(match: str | Callable[[RequestInfo], bool] | None, info: RequestInfo) -> bool:
    if match is None:
        return True
    if isinstance(match, str):
        return info.operation == match
    return match(info)


class Gate:
    """One request parked by :meth:`FaultProxy.hold_next` until :meth:`release`.

    ``arrived`` is set (from the proxy's thread) when the request is parked, so a test
    knows the request is in flight before it starts whatever should race it.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self._proxy = proxy
        self.arrived = threading.Event()
        """Set when the held request reached the proxy."""
        self.request: RequestInfo | None = None
        """The held request, once it arrived."""
        self.then: FaultKind | None = None
        self._released: asyncio.Event | None = None

    async def wait_arrived(self, within: float = 30.0) -> RequestInfo:
        """Wait (without blocking the caller's loop) until the held request arrived.

        Raises:
            TimeoutError: no matching request came within ``within`` seconds.
        """
        if not await asyncio.to_thread(self.arrived.wait, within):
            raise TimeoutError("the held request never reached the proxy")
        assert self.request is not None
        return self.request

    def release(self, then: FaultKind | None = None) -> None:
        """Let the held request go on: forwarded normally, or faulted with ``then``."""
        self.then = then
        self._proxy._call_soon(self._set)

    def _set(self) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        self._released.set()

    async def _wait(self) -> None:
        if self._released is None:
            self._released = asyncio.Event()
        await self._released.wait()


@dataclass(slots=True)
class _Plan:
    kind: FaultKind | None
    remaining: int
    match: str | Callable[[RequestInfo], bool] | None
    gate: Gate | None = None


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """A snapshot of what the proxy saw and did."""

    requests: dict[str, int]
    """Requests received, by operation (faulted ones included)."""
    faults: dict[str, int]
    """Faults injected, by :class:`FaultKind` value."""
    faults_by_operation: dict[str, int] = field(default_factory=dict)
    """Faults injected, by operation."""
    response_bytes: dict[str, int] = field(default_factory=dict)
    """Bytes of the responses forwarded to clients (head and body), by operation."""

    @property
    def total_requests(self) -> int:
        """All requests received."""
        return sum(self.requests.values())

    @property
    def total_faults(self) -> int:
        """All faults injected."""
        return sum(self.faults.values())


class _Request:
    """A parsed request: the head as bytes, and the body's raw bytes."""

    def __init__(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    def info(self) -> RequestInfo:
        return RequestInfo(
            self.method, self.target, classify(self.method, self.target), tuple(self.headers)
        )

    def wants_close(self) -> bool:
        connection = next((v for k, v in self.headers if k.lower() == "connection"), "")
        if self.version == "HTTP/1.0":
            return "keep-alive" not in connection.lower()
        return "close" in connection.lower()

    def upstream_bytes(self, *, strip: frozenset[str] = frozenset()) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in _HOP_BY_HOP | strip]
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class FaultProxy:
    """A fault-injecting HTTP/1.1 proxy in front of one S3 endpoint.

    Use it as a context manager (``with FaultProxy(url) as proxy``) or call
    :meth:`start` and :meth:`stop`. Settings may be changed while it runs.

    Args:
        upstream_url: The real endpoint, e.g. the moto server's ``http://127.0.0.1:port``.
        seed: Seed of the random fault decisions.
        rate: Probability that a request not matched by a plan is faulted (0..1).
        kinds: Fault kinds random faults are drawn from (uniformly).
        delay_seconds: How long ``delay`` holds a request before forwarding it.
        trickle_seconds: Pause between the response body's bytes under ``trickle``.
        eligible: Only requests for which this returns true get random faults
            (plans ignore it); ``None`` makes every request eligible.
        delay_eligible: Requests a random ``DELAY`` may hit (``None``: all); for any
            other request a drawn ``DELAY`` is replaced by one of the other kinds. A
            delay that outlasts the client's timeout matters for a write (it lands after
            its caller gave up, racing what comes next); a delayed read only costs time.
        serialize_conditional_writes: Forward requests carrying ``If-None-Match`` or
            ``If-Match`` one at a time per key. moto checks the condition and stores the
            object in two steps without a lock, so concurrent conditional PUTs can both
            succeed there; real S3 decides them atomically. This restores S3's semantics.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        seed: int = 0,
        rate: float = 0.0,
        kinds: Iterable[FaultKind] = ALL_KINDS,
        delay_seconds: float = 5.0,
        trickle_seconds: float = 0.1,
        eligible: Callable[[RequestInfo], bool] | None = None,
        delay_eligible: Callable[[RequestInfo], bool] | None = None,
        serialize_conditional_writes: bool = False,
    ) -> None:
        parsed = urlparse(upstream_url)
        if parsed.scheme != "http" or parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream_url!r}")
        self.upstream_host: str = parsed.hostname
        self.upstream_port: int = parsed.port
        self.rate = rate
        self.kinds: tuple[FaultKind, ...] = tuple(kinds)
        self.delay_seconds = delay_seconds
        self.trickle_seconds = trickle_seconds
        self.eligible = eligible
        self.delay_eligible = delay_eligible
        self.serialize_conditional_writes = serialize_conditional_writes
        self.endpoint_url = ""
        """``http://127.0.0.1:port`` once started."""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._plans: list[_Plan] = []
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._faults_by_operation: Counter[str] = Counter()
        self._response_bytes: Counter[str] = Counter()
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening on a free loopback port; sets :attr:`endpoint_url`.

        Raises:
            RuntimeError: already started, or the listener could not be created.
        """
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._thread = threading.Thread(target=self._run, name="FaultProxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise RuntimeError("FaultProxy could not start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: held and delayed requests are abandoned, connections closed."""
        if self._thread is None:
            return
        self._call_soon(self._request_stop)
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    # --- fault control ----------------------------------------------------------------

    def plan_next(
        self,
        kind: FaultKind,
        count: int = 1,
        match: str | Callable[[RequestInfo], bool] | None = None,
    ) -> None:
        """Fault the next ``count`` requests that ``match`` (an operation name or a predicate)."""
        with self._lock:
            self._plans.append(_Plan(FaultKind(kind), count, match))

    def hold_next(self, match: str | Callable[[RequestInfo], bool] | None = None) -> Gate:
        """Park the next request that ``match`` until the returned gate is released."""
        gate = Gate(self)
        with self._lock:
            self._plans.append(_Plan(None, 1, match, gate))
        return gate

    def clear_plans(self) -> None:
        """Forget plans not used yet."""
        with self._lock:
            self._plans.clear()

    def quiet(self) -> None:
        """No more faults: rate 0 and no plans."""
        with self._lock:
            self.rate = 0.0
            self._plans.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random fault decisions from ``seed`` (a replayable run of one
        schedule among many draws the same faults as when it ran alone)."""
        with self._lock:
            self._rng = random.Random(seed)

    def stats(self) -> ProxyStats:
        """Counters so far."""
        with self._lock:
            return ProxyStats(
                dict(sorted(self._requests.items())),
                dict(sorted(self._faults.items())),
                dict(sorted(self._faults_by_operation.items())),
                dict(sorted(self._response_bytes.items())),
            )

    def in_flight(self) -> int:
        """Requests received and not yet answered (held, delayed or being forwarded)."""
        with self._lock:
            return self._in_flight

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no request is in flight (a delayed write has landed or failed);
        False on timeout. Tests call it before they look at what landed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._faults_by_operation.clear()
            self._response_bytes.clear()

    def _decide(self, info: RequestInfo) -> tuple[FaultKind | None, Gate | None]:
        with self._lock:
            self._requests[info.operation] += 1
            for plan in self._plans:
                if _matches(plan.match, info):
                    plan.remaining -= 1
                    if plan.remaining <= 0:
                        self._plans.remove(plan)
                    if plan.kind is not None:
                        self._count_fault(plan.kind, info)
                    return plan.kind, plan.gate
            eligible = self.eligible is None or self.eligible(info)
            if eligible and self.kinds and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
                if kind is FaultKind.DELAY and not (
                    self.delay_eligible is None or self.delay_eligible(info)
                ):
                    others = [other for other in self.kinds if other is not FaultKind.DELAY]
                    if not others:
                        return None, None
                    kind = self._rng.choice(others)
                self._count_fault(kind, info)
                return kind, None
        return None, None

    def _count_fault(self, kind: FaultKind, info: RequestInfo) -> None:
        self._faults[kind.value] += 1
        self._faults_by_operation[info.operation] += 1

    # --- the event loop thread --------------------------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed in between: nothing to do
                self._loop.call_soon_threadsafe(callback)

    def _request_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(
                self._serve_connection, "127.0.0.1", 0, limit=_MAX_HEADER_BYTES
            )
        except OSError as err:
            self._startup_error = err
            self._ready.set()
            return
        port = server.sockets[0].getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await _read_request(reader, writer)
                if request is None:
                    return
                keep_open = await self._handle(request, writer)
                if not keep_open or request.wants_close():
                    return
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return  # a client or upstream that broke the exchange: drop the connection
        except asyncio.CancelledError:
            # Only stop() cancels; asyncio's stream server logs a cancelled handler as an
            # error (Python 3.11), so end quietly instead.
            return
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; returns whether the client connection stays usable."""
        with self._lock:
            self._in_flight += 1
        try:
            return await self._handle_counted(request, writer)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    async def _handle_counted(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        info = request.info()
        kind, gate = self._decide(info)
        if gate is not None:
            gate.request = info
            gate.arrived.set()
            await gate._wait()
            kind = gate.then
            if kind is not None:
                with self._lock:
                    self._count_fault(kind, info)
        if kind in (FaultKind.INTERNAL_ERROR, FaultKind.SLOW_DOWN, FaultKind.BAD_REQUEST):
            writer.write(_error_response(kind, request.method == "HEAD"))
            await writer.drain()
            return True
        if kind is FaultKind.RESET:
            _reset(writer)
            return False
        if kind is FaultKind.DELAY:
            await asyncio.sleep(self.delay_seconds)
        strip = _CONDITIONS if kind is FaultKind.STRIP_CONDITIONS else frozenset()
        response = await self._forward(request, info, strip=strip)
        if kind is FaultKind.DROP_RESPONSE:
            _reset(writer)
            return False
        with self._lock:
            self._response_bytes[info.operation] += len(response)
        if kind is FaultKind.TRICKLE:
            head, _, body = response.partition(b"\r\n\r\n")
            writer.write(head + b"\r\n\r\n")
            for index in range(len(body)):
                await writer.drain()
                await asyncio.sleep(self.trickle_seconds)
                writer.write(body[index : index + 1])
        else:
            writer.write(response)
        await writer.drain()
        return True

    async def _forward(
        self, request: _Request, info: RequestInfo, *, strip: frozenset[str] = frozenset()
    ) -> bytes:
        conditional = info.header("If-None-Match") or info.header("If-Match")
        if strip or not (self.serialize_conditional_writes and conditional):
            return await self._exchange(request, strip=strip)
        key = request.target.partition("?")[0]
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._exchange(request)

    async def _exchange(self, request: _Request, *, strip: frozenset[str] = frozenset()) -> bytes:
        """Send the request upstream on a fresh connection; the response, re-framed."""
        reader, writer = await asyncio.open_connection(
            self.upstream_host, self.upstream_port, limit=_MAX_HEADER_BYTES
        )
        try:
            writer.write(request.upstream_bytes(strip=strip))
            await writer.drain()
            return await _read_response(reader, head_only=request.method == "HEAD")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --- HTTP/1.1 framing ---------------------------------------------------------------------


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


async def _read_body(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], *, until_eof: bool
) -> bytes:
    """The body's bytes exactly as framed on the wire (chunked framing kept)."""
    if "chunked" in (_header(headers, "transfer-encoding") or "").lower():
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = _header(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return await reader.read() if until_eof else b""


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> _Request | None:
    """The next request on a kept-alive connection; ``None`` when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise
        return None
    request_line, headers = _parse_head(head)
    method, target, version = request_line.split(" ", 2)
    if (_header(headers, "expect") or "").lower() == "100-continue":
        # The proxy answers the interim response itself and strips Expect upstream.
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    body = await _read_body(reader, headers, until_eof=False)
    return _Request(method, target, version, headers, body)


async def _read_response(reader: asyncio.StreamReader, *, head_only: bool) -> bytes:
    """Read one upstream response and frame it for a kept-alive client connection."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, headers = _parse_head(head)
        status = int(status_line.split(" ", 2)[1])
        if status >= 200 or status == 101:
            break  # skip interim 1xx responses
    no_body = head_only or status in (204, 304)
    body = b"" if no_body else await _read_body(reader, headers, until_eof=True)
    kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
    framed = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in kept)
    if not framed and not no_body:
        kept.append(("Content-Length", str(len(body))))
    lines = [status_line, *(f"{k}: {v}" for k, v in kept)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_ERRORS: Final = {
    FaultKind.INTERNAL_ERROR: (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
    FaultKind.SLOW_DOWN: (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    FaultKind.BAD_REQUEST: (
        400,
        "Bad Request",
        "InvalidRequest",
        "The request is not supported by this server.",
    ),
}


def _error_response(kind: FaultKind, head_only: bool) -> bytes:
    """An S3 error response as AWS sends it (XML body; HEAD gets the status only)."""
    status, reason, code, message = _ERRORS[kind]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()
    headers = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/xml",
        f"x-amz-request-id: {request_id}",
        f"Content-Length: {0 if head_only else len(body)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed server or middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
