"""The aiobotocore client: created from the configuration, each call bounded in time.

aiobotocore is imported only when a client is first needed, so importing the library
(and appending, which never makes a request) costs a serverless cold start nothing;
aioboto3 (and boto3) only when the caller passes an ``aioboto3.Session``.
Only :class:`~s3_eventstore.s3.bucket.Bucket` (and the doctor, which probes raw
endpoint behaviour) use this module.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
from typing import TYPE_CHECKING, Any, Final, TypeVar

from s3_eventstore.s3.config import client_config
from s3_eventstore.s3.pool import CURRENT_COUNTER, shared_session

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from contextlib import AsyncExitStack

    from s3_eventstore.s3.config import ClientSettings
    from s3_eventstore.s3.metrics import RequestCounter

__all__ = ["DeadlineClient", "log_retries", "md5_for_required_checksums", "open_client", "within"]

logger = logging.getLogger("s3_eventstore.retries")
"""Where retries are logged (INFO): a child of the library's logger, so the CLI can show
them on stderr without the rest of its INFO messages."""
_CAUSE: Final = "s3es-retry-cause"
"""Key in botocore's per-request context where the last attempt's failure is noted."""

_T = TypeVar("_T")


async def open_client(settings: ClientSettings, stack: AsyncExitStack, session: Any = None) -> Any:
    """Create an S3 client whose lifetime is bound to ``stack``.

    ``session`` is an ``aioboto3.Session`` (or an aiobotocore session); ``None`` uses the
    process's shared aiobotocore session for the profile (:func:`shared_session`), whose
    parsed S3 model makes every client after the first cheap.
    """
    plain_http = (settings.endpoint_url or "").lower().startswith("http://")
    options: dict[str, Any] = {
        "endpoint_url": settings.endpoint_url,
        "region_name": settings.region_name,
        "config": client_config(settings, shared_tls_session_class(tls=not plain_http)),
    }
    if session is None:
        context = shared_session(settings.profile_name).create_client("s3", **options)
    else:
        context = session.client("s3", **options)
    client = log_retries(await stack.enter_async_context(context))
    if not settings.checksum_headers:
        md5_for_required_checksums(client)
    return client


def md5_for_required_checksums(client: Any) -> Any:
    """Send ``Content-MD5`` instead of ``x-amz-checksum-*`` where an operation requires a
    checksum (DeleteObjects): for ``checksum_headers=False``, on servers that answer 400
    to the flexible-checksum headers.

    botocore 1.36+ adds a CRC32 checksum to every operation whose model marks a checksum
    as required, whatever ``request_checksum_calculation`` says; S3 has always accepted
    ``Content-MD5`` for them (its DeleteObjects documentation: "The Content-MD5 or
    x-amz-sdk-checksum-algorithm header is required"). Runs just before signing, so the
    signature covers the header. Returns ``client``.
    """
    client.meta.events.register(
        "before-sign.s3", _replace_checksum_headers, unique_id="s3es-content-md5"
    )
    return client


def _replace_checksum_headers(request: Any = None, **_: Any) -> None:
    if request is None:
        return
    headers = request.headers
    flexible = [
        name
        for name in list(headers.keys())
        if name.lower().startswith("x-amz-checksum-")
        or name.lower() == "x-amz-sdk-checksum-algorithm"
    ]
    if not flexible or not isinstance(request.body, bytes | bytearray):
        return
    for name in flexible:
        del headers[name]
    digest = hashlib.md5(request.body, usedforsecurity=False).digest()
    headers["Content-MD5"] = base64.b64encode(digest).decode("ascii")


@functools.cache
def _tls_context(ca_certs: str | None) -> Any:
    """One TLS client context per CA bundle for the process: loading the bundle costs
    ~50 ms of CPU, and aiobotocore would load it again for every client."""
    from botocore.httpsession import create_urllib3_context

    context = create_urllib3_context()
    # botocore leaves host-name matching to urllib3, so its context has it off; aiohttp
    # relies on the context alone: without this a certificate the bundle trusts would be
    # accepted whatever host it names (tests/test_tls.py).
    context.check_hostname = True
    if ca_certs:
        context.load_verify_locations(ca_certs, None, None)
    return context


@functools.cache
def shared_tls_session_class(*, tls: bool = True) -> type:
    """aiobotocore's HTTP session, creating its connector with the process's TLS context.

    What ``AIOHTTPSession._create_connector`` does (verification on, the CA bundle
    botocore resolves: certifi or ``AWS_CA_BUNDLE``), minus the reloading, plus two
    fixes: the certificate must name the host (botocore's context leaves that check to
    urllib3, which aiohttp does not use), and a plain HTTP proxy does not turn
    verification off. Client certificates and TLS proxies take aiobotocore's own path,
    with the host-name check turned on.

    ``tls=False`` is for a client of an ``http://`` endpoint, which never opens a TLS
    connection: loading a CA bundle for it costs ~235 million instructions (tens of
    milliseconds, a tenth of a small CLI call), so its connector gets aiohttp's
    default *verified* context (``ssl=True``: the system's CA store, built when aiohttp
    is imported) instead. Verification is never turned off.
    """
    import aiohttp
    from aiobotocore.httpsession import AIOHTTPSession
    from botocore.httpsession import get_cert_path

    class SharedTLSSession(AIOHTTPSession):  # type: ignore[misc]
        def _get_ssl_context(self) -> Any:
            # aiobotocore's own path (client certificates, TLS proxies) builds botocore's
            # context, whose host-name check is off (see _tls_context): turn it on.
            context = super()._get_ssl_context()
            context.check_hostname = True
            return context

        def _create_connector(self, proxy_url: str | None) -> Any:
            verify = getattr(self, "_verify", None)
            if not verify:  # the caller turned verification off (verify=False)
                return super()._create_connector(proxy_url)
            proxy_tls = bool(proxy_url) and any(
                self._proxy_config.settings.get(name) is not None
                for name in ("proxy_ca_bundle", "proxy_client_cert")
            )
            simple = getattr(self, "_cert_file", 1) is None and isinstance(verify, bool | str)
            if proxy_tls or not simple:
                return super()._create_connector(proxy_url)
            # Also behind a plain proxy, where aiobotocore would pass ssl=False (no
            # verification at all) when no proxy CA bundle is configured.
            return aiohttp.TCPConnector(
                limit=self._max_pool_connections,
                ssl=_tls_context(get_cert_path(verify)) if tls else True,
                **self._connector_args,
            )

    return SharedTLSSession


def log_retries(client: Any) -> Any:
    """Log every retry botocore makes on ``client`` at INFO, with what the previous
    attempt failed with, so that an unreachable or failing endpoint is never silent.

    botocore decides retries in its ``needs-retry`` handler; the failure is noted in the
    request's context there, and each new attempt (``request-created`` with attempt > 1)
    is logged. Returns ``client``.
    """
    events = client.meta.events
    events.register("needs-retry.s3", _note_cause, unique_id="s3es-retry-cause")
    events.register("request-created.s3", _log_attempt, unique_id="s3es-retry-log")
    return client


def _note_cause(
    request_dict: dict[str, Any] | None = None,
    response: tuple[Any, dict[str, Any]] | None = None,
    caught_exception: BaseException | None = None,
    **_: Any,
) -> None:
    context = (request_dict or {}).get("context")
    if context is None:
        return
    if caught_exception is not None:
        context[_CAUSE] = f"{type(caught_exception).__name__}: {caught_exception}"
    elif response is not None:
        http, parsed = response
        error = (parsed or {}).get("Error", {})
        status = getattr(http, "status_code", "?")
        context[_CAUSE] = f"HTTP {status} {error.get('Code', '')}".rstrip()


def _log_attempt(request: Any = None, operation_name: str = "", **_: Any) -> None:
    context = getattr(request, "context", None) or {}
    retries = context.get("retries") or {}
    attempt = retries.get("attempt", 1)
    if attempt > 1:
        logger.info(
            "retrying %s (attempt %d of %s) after %s",
            operation_name,
            attempt,
            retries.get("max", "?"),
            context.get(_CAUSE, "a failed attempt"),
        )


class DeadlineClient:
    """An S3 client whose awaitable calls each end within ``timeout`` seconds.

    botocore bounds one attempt (connect and read timeouts) and the number of attempts,
    but not their sum with backoff: a caller with a deadline needs the sum bounded.
    With ``counter``, each call's requests are counted there (a shared client's hooks
    count into the counter the calling context names: :mod:`s3_eventstore.s3.pool`).
    """

    __slots__ = ("_client", "_counter", "_timeout")

    def __init__(
        self, client: Any, timeout: float | None, counter: RequestCounter | None = None
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr
        timeout, counter = self._timeout, self._counter

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            # Coroutines only: botocore's synchronous helpers (meta, paginators) pass through.
            return _within(result, timeout, counter) if asyncio.iscoroutine(result) else result

        return call


async def _within(
    awaitable: Awaitable[_T], seconds: float | None, counter: RequestCounter | None = None
) -> _T:
    token = CURRENT_COUNTER.set(counter) if counter is not None else None
    try:
        if seconds is None:
            return await awaitable
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await awaitable
        except TimeoutError as err:
            if not deadline.expired():
                raise  # a timeout of the call itself, not of the operation deadline
            raise TimeoutError(
                f"no response within operation_timeout={seconds:g}s (retries included)"
            ) from err
    finally:
        if token is not None:
            CURRENT_COUNTER.reset(token)


async def within(awaitable: Awaitable[_T], seconds: float) -> _T:
    """Await ``awaitable``, cut after ``seconds``: a builtin ``TimeoutError`` naming the
    ``operation_timeout`` (the seam translates it into ``StorageUnavailableError``)."""
    return await _within(awaitable, seconds)
