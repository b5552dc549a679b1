"""The endpoint probe: does the endpoint honour ``If-None-Match: *`` on PutObject?

A store relies on conditional writes (one writer wins each turn). Endpoints that are
neither AWS nor loopback are probed once, before the first write
(``S3EventStore(check_endpoint=...)``): :func:`probe_conditional_put` PUTs a key twice
under ``{prefix}_doctor/`` and deletes it. The full battery of checks is the doctor's
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

from s3_eventstore.errors import UnsafeEndpointError
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
    "probe_conditional_put",
]

logger = logging.getLogger("s3_eventstore")

DOCTOR_DIR: Final = "_doctor/"
"""Folder under the store prefix where probes write (outside ``threads/``)."""
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


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


async def probe_conditional_put(client: Any, bucket: str, key: str) -> ProbeResult:
    """PUT ``key`` twice with ``If-None-Match: *`` and delete it: is the second refused?

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
            if error_code(err) in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                return ProbeResult(
                    False, f"PutObject with If-None-Match: * refused: {error_code(err)}", requests
                )
            if not is_precondition_failed(err):  # 412: a leftover probe; condition honoured
                raise translate(err, operation="PutObject", key=key) from err
        try:
            await call("PutObject", client.put_object, Body=body, IfNoneMatch="*")
        except failures as err:
            if is_precondition_failed(err):
                return ProbeResult(True, "second PUT refused: 412 PreconditionFailed", requests)
            raise translate(err, operation="PutObject", key=key) from err
        return ProbeResult(
            False, "second PUT with If-None-Match: * succeeded (the header is ignored)", requests
        )
    finally:
        # Best effort: the probe key is tiny and outside threads/.
        with contextlib.suppress(*failures):
            await call("DeleteObject", client.delete_object)


class EndpointProbe:
    """Runs the probe once per store, when its :class:`EndpointCheck` asks for it."""

    def __init__(self, bucket: Bucket, prefix: str, check: EndpointCheck) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._check = check
        self._lock = asyncio.Lock()
        self.result: ProbeResult | None = None
        """The probe's result once it ran."""

    def wanted(self) -> bool:
        """Whether the configuration asks for a probe before the first write."""
        if self._check.check_endpoint is not None:
            return self._check.check_endpoint
        endpoint = self._bucket.settings.endpoint_url
        if endpoint is None:
            return False  # AWS (a borrowed client's endpoint is its owner's choice)
        host = (urlparse(endpoint).hostname or "").lower()
        aws = host.endswith((".amazonaws.com", ".amazonaws.com.cn"))
        return not aws and host not in _LOOPBACK_HOSTS

    async def run(self) -> ProbeResult:
        """Probe now, once (see ``S3EventStore.probe_endpoint``).

        Raises:
            StorageError: the probe could not run (it is tried again next time).
        """
        async with self._lock:
            if self.result is None:
                key = f"{self._prefix}{DOCTOR_DIR}probe-{uuid.uuid4().hex}"
                client = await self._bucket.bounded_client()
                self.result = await probe_conditional_put(client, self._bucket.name, key)
                if not self.result.honoured:
                    logger.warning(
                        "endpoint %s ignores If-None-Match: %s",
                        self._bucket.settings.endpoint_url,
                        self.result.detail,
                    )
            return self.result

    async def before_write(self) -> None:
        """Probe if asked to, and refuse to write to an endpoint that ignores the condition.

        Raises:
            UnsafeEndpointError: the endpoint ignores ``If-None-Match`` and unsafe
                endpoints are not allowed.
            StorageError: the probe could not run.
        """
        if self.result is None and not self.wanted():
            return
        probe = await self.run()
        if probe.honoured or self._check.allow_unsafe_endpoint:
            return
        raise UnsafeEndpointError(
            f"endpoint {self._bucket.settings.endpoint_url} does not honour If-None-Match: * "
            f"({probe.detail}): two writers of one turn could overwrite each other, so the "
            f"store refuses to write; pass allow_unsafe_endpoint=True to write anyway",
            operation="PutObject",
            code="IfNoneMatchIgnored",
        )
