"""The endpoint probe: does the endpoint honour ``If-None-Match: *`` on PutObject, and on
CompleteMultipartUpload?

A store relies on conditional writes (one writer wins each turn). Every endpoint that
is not AWS is probed before the first write, loopback included (a local MinIO on
127.0.0.1:9000 is exactly who needs it), once per endpoint per process
(``S3EventStore(check_endpoint=...)``): :func:`probe_conditional_put` PUTs a key under
``{prefix}_doctor/`` with ``If-None-Match: *`` and with ``If-Match`` (a wrong ETag, the
right one, on a missing key: open turns and compaction rely on it) and deletes it. Before the first turn that outgrows
``max_turn_buffer_bytes`` (a streamed turn, finished by CompleteMultipartUpload),
:func:`probe_conditional_multipart_complete` completes a one-part upload onto an existing
key: where the condition is ignored there (Ceph radosgw 16) the store refuses to stream
(``UnsafeEndpointError``, code ``ConditionalMultipartIgnored``), so every finish stays a
conditional write that one writer wins. The full battery of checks is the doctor's
(:mod:`s3_eventstore.ops.doctor`).

The probe talks to the raw client on purpose: it must see what a misbehaving endpoint
answers, which the bucket seam would already have turned into an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

from s3_eventstore.errors import StorageError, UnsafeEndpointError
from s3_eventstore.s3.errors import error_code, is_precondition_failed, translate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.config import EndpointCheck

__all__ = [
    "DOCTOR_DIR",
    "EndpointProbe",
    "ProbeResult",
    "endpoint_failures",
    "endpoint_key",
    "forget_probes",
    "is_aws",
    "probe_conditional_multipart_complete",
    "probe_conditional_put",
]

logger = logging.getLogger("s3_eventstore")

DOCTOR_DIR: Final = "_doctor/"
"""Folder under the store prefix where probes write (outside ``threads/``)."""
_AWS_HOST_SUFFIXES: Final = (".amazonaws.com", ".amazonaws.com.cn")
_RESULTS: dict[str, ProbeResult] = {}
"""Probe results by endpoint, for the life of the process (see :func:`endpoint_key`)."""
_MULTIPART_RESULTS: dict[str, ProbeResult] = {}
"""Multipart-completion probe results by endpoint, for the life of the process."""


def forget_probes() -> None:
    """Forget every endpoint's probe results: the next write to each probes again."""
    _RESULTS.clear()
    _MULTIPART_RESULTS.clear()


def endpoint_key(endpoint_url: str) -> str:
    """How probe results are cached: scheme, host and port, case-folded."""
    parsed = urlparse(endpoint_url)
    return f"{parsed.scheme.lower()}://{parsed.netloc.lower()}"


def is_aws(endpoint_url: str | None) -> bool:
    """True for AWS itself: no endpoint, or a host under ``amazonaws.com(.cn)``."""
    if endpoint_url is None:
        return True
    host = (urlparse(endpoint_url).hostname or "").lower()
    return host.endswith(_AWS_HOST_SUFFIXES)


def endpoint_failures() -> tuple[type[BaseException], ...]:
    """What a request to a misbehaving endpoint raises: reported by the probes, not raised.

    A function, not a constant: botocore and aiohttp are imported when a probe runs, so
    that ``import s3_eventstore`` stays free of them (cold starts).
    """
    import aiohttp
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Whether the endpoint honours ``If-None-Match: *`` on PutObject."""

    honoured: bool
    """True when a second conditional PUT of the same key was refused with 412."""
    detail: str
    """What the endpoint answered."""
    requests: dict[str, int] = field(default_factory=dict)
    """Requests the probe sent, by operation (they are also in the store's counter)."""


_REFUSED_CODES: Final = ("NotImplemented", "InvalidArgument", "InvalidRequest")
"""Codes of an endpoint that refuses a conditional header outright."""


async def probe_conditional_put(client: Any, bucket: str, key: str) -> ProbeResult:
    """PUT ``key`` with ``If-None-Match: *`` twice, then with ``If-Match`` (a wrong ETag, the
    right one, and on the deleted key), and delete it: is every condition honoured?

    Raises:
        StorageError: the endpoint could not be reached or refused the PUT for a reason
            other than the condition (access denied, missing bucket).
    """
    failures = endpoint_failures()
    requests: dict[str, int] = {}

    async def call(operation: str, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        requests[operation] = requests.get(operation, 0) + 1
        return await method(Bucket=bucket, Key=key, **params)

    body = b"s3-eventstore conditional write probe\n"
    try:
        try:
            await call("PutObject", client.put_object, Body=body, IfNoneMatch="*")
        except failures as err:
            if error_code(err) in _REFUSED_CODES:
                return ProbeResult(
                    False, f"PutObject with If-None-Match: * refused: {error_code(err)}", requests
                )
            if not is_precondition_failed(err):  # 412: a leftover probe; condition honoured
                raise translate(err, operation="PutObject", key=key) from err
        try:
            await call("PutObject", client.put_object, Body=body, IfNoneMatch="*")
        except failures as err:
            if not is_precondition_failed(err):
                raise translate(err, operation="PutObject", key=key) from err
        else:
            return ProbeResult(
                False,
                "second PUT with If-None-Match: * succeeded (the header is ignored)",
                requests,
            )
        return await _probe_if_match(call, client, body, failures, requests)
    finally:
        # Best effort: the probe key is tiny and outside threads/.
        with contextlib.suppress(*failures):
            await call("DeleteObject", client.delete_object)


async def probe_conditional_multipart_complete(client: Any, bucket: str, key: str) -> ProbeResult:
    """PUT ``key``, then complete a one-part multipart upload onto it with
    ``If-None-Match: *``: is the completion refused? Deletes the key and aborts the
    upload afterwards. (Ceph radosgw 16 ignores the condition there, though it honours it
    on PutObject: a streamed turn could then overwrite a finished one.)

    Raises:
        StorageError: the endpoint could not be reached, or refused a request for a
            reason other than the condition.
    """
    failures = endpoint_failures()
    requests: dict[str, int] = {}

    async def call(operation: str, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        requests[operation] = requests.get(operation, 0) + 1
        try:
            return await method(Bucket=bucket, Key=key, **params)
        except failures as err:
            if operation == "CompleteMultipartUpload" and is_precondition_failed(err):
                raise
            if operation == "CompleteMultipartUpload" and error_code(err) in _REFUSED_CODES:
                raise
            raise translate(err, operation=operation, key=key) from err

    upload_id: str | None = None
    try:
        await call("PutObject", client.put_object, Body=b"s3-eventstore multipart probe\n")
        created = await call("CreateMultipartUpload", client.create_multipart_upload)
        upload_id = str(created["UploadId"])
        part = await call(
            "UploadPart", client.upload_part, UploadId=upload_id, PartNumber=1, Body=b"part"
        )
        try:
            await call(
                "CompleteMultipartUpload",
                client.complete_multipart_upload,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
                IfNoneMatch="*",
            )
        except failures as err:
            if is_precondition_failed(err):
                return ProbeResult(
                    True, "CompleteMultipartUpload onto an existing key: 412", requests
                )
            return ProbeResult(
                False,
                f"CompleteMultipartUpload with If-None-Match: * refused: {error_code(err)}",
                requests,
            )
        upload_id = None  # completed
        return ProbeResult(
            False,
            "CompleteMultipartUpload with If-None-Match: * overwrote an existing key "
            "(the header is ignored there)",
            requests,
        )
    finally:
        with contextlib.suppress(*failures, StorageError):  # best effort: tiny, not threads/
            if upload_id is not None:
                await call(
                    "AbortMultipartUpload", client.abort_multipart_upload, UploadId=upload_id
                )
        with contextlib.suppress(*failures, StorageError):
            await call("DeleteObject", client.delete_object)


async def _probe_if_match(
    call: Callable[..., Awaitable[Any]],
    client: Any,
    body: bytes,
    failures: tuple[type[BaseException], ...],
    requests: dict[str, int],
) -> ProbeResult:
    """Open turns and compaction rely on ``If-Match`` (docs/FORMAT.md 11.9): a PUT with a
    wrong ETag must be refused (412), one with the right ETag must succeed; a PUT with
    ``If-Match`` on a missing key must fail too (older MinIO wrote it)."""
    head = await call("HeadObject", client.head_object)
    etag = str(head.get("ETag", ""))
    try:
        await call("PutObject", client.put_object, Body=body, IfMatch='"0000000000000000"')
    except failures as err:
        if not is_precondition_failed(err):
            if error_code(err) in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                return ProbeResult(
                    False, f"PutObject with If-Match refused: {error_code(err)}", requests
                )
            raise translate(err, operation="PutObject") from err
    else:
        return ProbeResult(
            False, "PUT with a wrong If-Match ETag succeeded (the header is ignored)", requests
        )
    try:
        await call("PutObject", client.put_object, Body=body + b"2", IfMatch=etag)
    except failures as err:
        return ProbeResult(
            False, f"PUT with the current ETag as If-Match failed: {error_code(err)}", requests
        )
    await call("DeleteObject", client.delete_object)
    try:
        await call("PutObject", client.put_object, Body=body, IfMatch=etag)
    except failures as err:
        if is_precondition_failed(err) or error_code(err) in ("NoSuchKey", "404"):
            return ProbeResult(
                True,
                "If-None-Match: * and If-Match honoured (412 on a taken key and a wrong "
                "ETag, refused on a missing key)",
                requests,
            )
        raise translate(err, operation="PutObject") from err
    return ProbeResult(
        False, "PUT with If-Match on a missing key succeeded (the condition is ignored)", requests
    )


class EndpointProbe:
    """Runs the probe once per store, when its :class:`EndpointCheck` asks for it."""

    def __init__(self, bucket: Bucket, prefix: str, check: EndpointCheck) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._check = check
        self._lock = asyncio.Lock()
        self.result: ProbeResult | None = None
        """The probe's result once it ran."""
        self.multipart: ProbeResult | None = None
        """The multipart probe's result once it ran (before the first streamed turn)."""

    def wanted(self) -> bool:
        """Whether the configuration asks for a probe before the first write: every
        endpoint that is not AWS (loopback included) unless ``check_endpoint`` says."""
        if self._check.check_endpoint is not None:
            return self._check.check_endpoint
        # A borrowed client without a configured endpoint: its owner chose it; probe it
        # unless it is AWS.
        return not is_aws(self._endpoint())

    def _endpoint(self) -> str | None:
        endpoint = self._bucket.settings.endpoint_url
        client = self._bucket.client
        if endpoint is None and client is not None:
            endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
            if endpoint is not None and is_aws(endpoint):
                return None
        return endpoint

    async def run(self) -> ProbeResult:
        """Probe now, once per endpoint per process (see ``S3EventStore.probe_endpoint``).

        Raises:
            StorageError: the probe could not run (it is tried again next time).
        """
        async with self._lock:
            if self.result is None:
                client = await self._bucket.bounded_client()
                endpoint = self._endpoint()
                cache = None if endpoint is None else endpoint_key(endpoint)
                result = _RESULTS.get(cache) if cache is not None else None
                if result is None:
                    key = f"{self._prefix}{DOCTOR_DIR}probe-{uuid.uuid4().hex}"
                    result = await probe_conditional_put(client, self._bucket.name, key)
                    if cache is not None:
                        _RESULTS[cache] = result
                self.result = result
                if not result.honoured:
                    logger.warning("endpoint %s ignores If-None-Match: %s", endpoint, result.detail)
            return self.result

    async def before_write(self) -> None:
        """Probe if asked to, and refuse to write to an endpoint that ignores the condition.

        Raises:
            UnsafeEndpointError: the endpoint ignores ``If-None-Match`` or ``If-Match`` and
                unsafe endpoints are not allowed.
            StorageError: the probe could not run.
        """
        if self.result is None and not self.wanted():
            return
        probe = await self.run()
        if probe.honoured or self._check.allow_unsafe_endpoint:
            return
        raise UnsafeEndpointError(
            f"endpoint {self._bucket.settings.endpoint_url} does not honour conditional "
            f"writes ({probe.detail}): two writers of one turn could overwrite each other "
            f"(If-None-Match: *), or a stale writer overwrite a finished turn (If-Match), so "
            f"the store refuses to write; pass allow_unsafe_endpoint=True to write anyway",
            operation="PutObject",
            code="IfNoneMatchIgnored",
        )

    # --- streamed turns -----------------------------------------------------------------

    def stream_probe_pending(self) -> bool:
        """Whether a turn about to stream must first wait for the multipart probe."""
        return self.multipart is None and self.wanted()

    async def probe_multipart(self) -> ProbeResult:
        """Probe conditional multipart completion now, once per endpoint per process
        (before the first stream).

        Raises:
            StorageError: the probe could not run (it is tried again next time).
        """
        async with self._lock:
            if self.multipart is None:
                endpoint = self._endpoint()
                cache = None if endpoint is None else endpoint_key(endpoint)
                cached = _MULTIPART_RESULTS.get(cache) if cache is not None else None
                if cached is not None:
                    self.multipart = cached
                    return cached
                key = f"{self._prefix}{DOCTOR_DIR}probe-multipart-{uuid.uuid4().hex}"
                client = await self._bucket.bounded_client()
                self.multipart = await probe_conditional_multipart_complete(
                    client, self._bucket.name, key
                )
                if cache is not None:
                    _MULTIPART_RESULTS[cache] = self.multipart
                if not self.multipart.honoured:
                    logger.warning(
                        "endpoint %s ignores If-None-Match on CompleteMultipartUpload: %s",
                        self._bucket.settings.endpoint_url,
                        self.multipart.detail,
                    )
            return self.multipart

    def check_stream_allowed(self, what: str, limit: int) -> None:
        """Refuse to start streaming ``what`` where completion ignores the condition.

        Raises:
            UnsafeEndpointError: the probe found that CompleteMultipartUpload ignores
                ``If-None-Match`` and unsafe endpoints are not allowed.
        """
        probe = self.multipart
        if probe is None or probe.honoured or self._check.allow_unsafe_endpoint:
            return
        raise UnsafeEndpointError(
            f"{what} outgrew max_turn_buffer_bytes={limit}, and a turn that large is "
            f"streamed as a multipart upload, but endpoint {self._bucket.settings.endpoint_url} "
            f"ignores If-None-Match on CompleteMultipartUpload ({probe.detail}): a streamed "
            f"turn could overwrite a finished one. The event was not appended; the turn "
            f"stays open with its events: finish it (one conditional PUT), or raise "
            f"max_turn_buffer_bytes so turns this large are buffered and finished by one "
            f"PUT, or pass allow_unsafe_endpoint=True to stream anyway",
            operation="CompleteMultipartUpload",
            code="ConditionalMultipartIgnored",
        )
