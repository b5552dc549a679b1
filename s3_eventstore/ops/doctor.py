"""Doctor: does an S3 endpoint honour what the store relies on?

S3-compatible servers differ from AWS in ways that silently break an archive: one that
ignores ``If-None-Match`` lets two writers of a turn overwrite each other, one that
loses keys between LIST pages or mangles metadata breaks reads. Each check says whether
the store *requires* the behaviour (a missing one fails the doctor: ``report.ok`` is
false, the CLI exits 5) or only *uses* it when present (a missing one is an advisory:
server-side checksum rejection, conditional multipart completion). Listing order is
not checked: the store sorts what it lists. :func:`run_doctor` probes
each behaviour under ``{prefix}_doctor/{random}/`` and reports yes or no with what the
endpoint answered, then deletes what it wrote. It never touches the store's threads.

Each check is a **requirement** (the store is unsafe or broken without it) or an
**advisory** (the store uses it when present and is correct without it: a server that
does not reject a wrong ``x-amz-checksum-sha256`` loses a second line of defence, since
every read is verified against the manifest anyway). :attr:`DoctorReport.ok` is about
requirements only.

:func:`~s3_eventstore.s3.probe.probe_conditional_put` is the cheap subset the store runs once before its first
write to a non-AWS endpoint (``S3EventStore(check_endpoint=...)``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import Any, Final

from s3_eventstore.errors import StorageError, StorageUnavailableError
from s3_eventstore.format.keys import normalise_prefix
from s3_eventstore.s3.client import open_client
from s3_eventstore.s3.config import ClientSettings
from s3_eventstore.s3.errors import error_code, http_status, is_precondition_failed, translate
from s3_eventstore.s3.probe import (
    DOCTOR_DIR,
    ProbeResult,
    endpoint_failures,
    probe_conditional_multipart_complete,
    probe_conditional_put,
)

_FAILURES: Final = endpoint_failures()
"""What a request to a misbehaving endpoint raises: reported by the doctor, not raised."""

_CLEAN_UP_FAILURES: Final[tuple[type[BaseException], ...]] = (*_FAILURES, TimeoutError)

CHECK_SECONDS: Final = 60.0
"""Default bound on one doctor check's whole exchange, bodies included, in seconds."""

__all__ = [
    "CHECKSUM_ADVICE",
    "CHECK_SECONDS",
    "DOCTOR_DIR",
    "Check",
    "DoctorReport",
    "ProbeResult",
    "probe_conditional_put",
    "run_doctor",
]

_ORDER_NAMES: Final = ("B", "a", "a-b", "a/b", "\u00e9", "\uff5e", "\U0001f600")
"""Names whose UTF-8 byte order differs from UTF-16 order (U+FF5E vs U+1F600) and from
case-insensitive or locale order (``B`` before ``a``)."""
_METADATA_VALUE: Final = '{"format":1,"thread_id":"t\\u00e9 \\"q\\" {x}","n":[1,2]}'
"""Shaped like a manifest: ASCII JSON with quotes, braces, backslashes and spaces."""


CHECKSUM_ADVICE: Final = (
    "this server rejects x-amz-checksum-* headers: use "
    "S3EventStore(..., checksum_headers=False) (CLI: --no-checksum-headers); "
    "every object is still verified against its manifest's SHA-256 on read"
)
"""What the doctor tells a user whose server answers 400 to checksum headers."""


@dataclass(frozen=True, slots=True)
class Check:
    """One probed behaviour."""

    name: str
    """Short identifier, e.g. ``conditional_put``."""
    ok: bool
    """True when the endpoint behaves as the store needs."""
    detail: str
    """What was sent and what the endpoint answered."""
    required: bool = True
    """True for a requirement; ``False`` for an advisory (used when present)."""


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """The outcome of :func:`run_doctor`."""

    endpoint_url: str | None
    """The endpoint probed (``None``: AWS)."""
    bucket: str
    """The bucket probed."""
    folder: str
    """Where the probes wrote."""
    checks: tuple[Check, ...]
    """Every check, in the order run."""
    cleaned_up: bool
    """True when nothing the doctor wrote is left under ``folder``."""

    @property
    def ok(self) -> bool:
        """True when every required check passed (advisories do not count)."""
        return all(check.ok for check in self.checks if check.required)

    @property
    def missing(self) -> tuple[str, ...]:
        """Names of the failed requirements."""
        return tuple(c.name for c in self.checks if c.required and not c.ok)

    @property
    def advisories(self) -> tuple[str, ...]:
        """Names of the failed advisory checks (reported, not failures)."""
        return tuple(c.name for c in self.checks if not c.required and not c.ok)

    def check(self, name: str) -> Check:
        """The check called ``name``.

        Raises:
            KeyError: no such check.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (for the CLI's ``--json``)."""
        return {
            **asdict(self),
            "ok": self.ok,
            "missing": list(self.missing),
            "advisories": list(self.advisories),
        }

    def format(self) -> str:
        """One line per check: ``yes``/``no``, name (advisories marked), detail."""
        lines = [
            f"{'yes' if c.ok else 'no ':3}  {c.name}{'' if c.required else ' (advisory)'}: "
            f"{c.detail}"
            for c in self.checks
        ]
        lines.append(f"{'yes' if self.cleaned_up else 'no ':3}  cleaned_up: {self.folder}")
        return "\n".join(lines)


async def run_doctor(
    endpoint_url: str | None,
    bucket: str,
    prefix: str = "",
    session: Any = None,
    client: Any = None,
    check_seconds: float = CHECK_SECONDS,
    checksum_headers: bool = True,
) -> DoctorReport:
    """Probe ``endpoint_url``/``bucket`` for what the store relies on; see the module doc.

    Args:
        endpoint_url: S3-compatible endpoint; ``None`` for AWS.
        bucket: An existing bucket the credentials may write to.
        prefix: The store prefix; probes write under ``{prefix}_doctor/{random}/``.
        session: An ``aioboto3.Session`` (credentials); ``None`` uses the default chain.
        client: An open aiobotocore S3 client to use instead (``endpoint_url`` and
            ``session`` are then ignored).
        check_seconds: Bound on each check's whole exchange (requests and bodies), in
            seconds; a check that runs over is reported failed, not waited for.
        checksum_headers: As the store's option: ``False`` checks the endpoint the way
            such a store uses it (no ``x-amz-checksum-*`` header; ``Content-MD5`` where
            S3 requires a checksum), and the two checksum checks are reported as not
            needed.

    Raises:
        ConfigurationError: the prefix is unusable.
        StorageError: the endpoint cannot be reached at all, or the bucket is missing or
            not writable (a failing behaviour is reported, not raised).
    """
    folder = f"{normalise_prefix(prefix)}{DOCTOR_DIR}{uuid.uuid4().hex}/"
    async with AsyncExitStack() as stack:
        if client is None:
            settings = ClientSettings(
                endpoint_url=endpoint_url, max_attempts=2, checksum_headers=checksum_headers
            )
            try:
                client = await open_client(settings, stack, session)
            except _FAILURES as err:
                raise translate(err, operation="CreateClient") from err
        doctor = _Doctor(client, bucket, folder, check_seconds, checksum_headers)
        try:
            checks = await doctor.run()
        finally:
            cleaned = await doctor.clean_up()
    return DoctorReport(endpoint_url, bucket, folder, tuple(checks), cleaned)


class _Doctor:
    def __init__(
        self,
        client: Any,
        bucket: str,
        folder: str,
        check_seconds: float,
        checksum_headers: bool = True,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.folder = folder
        self.check_seconds = check_seconds
        self.checksum_headers = checksum_headers
        self.written: set[str] = set()

    async def put(self, name: str, body: bytes, **params: Any) -> dict[str, Any]:
        key = self.folder + name
        self.written.add(key)
        response: dict[str, Any] = await self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, **params
        )
        return response

    async def run(self) -> list[Check]:
        # The first PUT also tells whether the bucket is usable at all: let that raise.
        try:
            async with asyncio.timeout(self.check_seconds):
                await self.put("conditional", b"first", IfNoneMatch="*")
        except TimeoutError as err:
            raise StorageUnavailableError(
                f"PutObject under {self.folder!r}: no answer within {self.check_seconds:g} s"
            ) from err
        except _FAILURES as err:
            raise translate(err, operation="PutObject", key=self.folder) from err
        probes = (
            ("conditional_put", self.conditional_put),
            ("checksum_sha256", self.checksum_accepted),
            ("wrong_checksum_rejected", self.wrong_checksum_rejected),
            ("listing_complete", self.listing_complete),
            ("metadata_round_trip", self.metadata_round_trip),
            ("ranged_get", self.ranged_get),
            ("conditional_multipart_complete", self.conditional_multipart_complete),
            ("delete_objects", self.delete_objects),
        )
        checks = []
        for name, probe in probes:
            # A check's whole exchange, bodies included, is bounded: a server that
            # trickles or stalls fails that check instead of hanging the doctor.
            try:
                async with asyncio.timeout(self.check_seconds):
                    checks.append(await probe())
            except TimeoutError:
                checks.append(
                    Check(name, False, f"no complete answer within {self.check_seconds:g} s")
                )
        return checks

    async def conditional_put(self) -> Check:
        name = "conditional_put"
        try:
            await self.put("conditional", b"second", IfNoneMatch="*")
        except _FAILURES as err:
            if is_precondition_failed(err):
                return Check(name, True, "second PUT with If-None-Match: * got 412")
            return Check(name, False, f"second PUT failed otherwise: {_describe(err)}")
        return Check(name, False, "second PUT with If-None-Match: * succeeded: header ignored")

    async def checksum_accepted(self) -> Check:
        name = "checksum_sha256"
        if not self.checksum_headers:
            return Check(
                name,
                True,
                "not used: checksum_headers=False (every object is still verified against "
                "its manifest's SHA-256 when read)",
            )
        body = b"checksummed body\n"
        try:
            response = await self.put("checksum", body, ChecksumAlgorithm="SHA256")
        except _FAILURES as err:
            return Check(
                name,
                False,
                f"PUT with ChecksumAlgorithm=SHA256 failed: {_describe(err)}; {CHECKSUM_ADVICE}",
            )
        expected = _b64_sha256(body)
        echoed = response.get("ChecksumSHA256")
        if echoed is None:
            return Check(name, True, "accepted (the response echoes no checksum)")
        if echoed != expected:
            return Check(name, False, f"accepted but echoed a wrong checksum {echoed}")
        return Check(name, True, "accepted and echoed the right x-amz-checksum-sha256")

    async def wrong_checksum_rejected(self) -> Check:
        name = "wrong_checksum_rejected"
        if not self.checksum_headers:
            return Check(name, True, "not used: checksum_headers=False", required=False)
        try:
            await self.put(
                "bad-checksum", b"the real body\n", ChecksumSHA256=_b64_sha256(b"another body")
            )
        except _FAILURES as err:
            code = error_code(err)
            if code is not None:
                return Check(
                    name, True, f"rejected: {code} (HTTP {http_status(err)})", required=False
                )
            return Check(
                name, False, f"failed without an S3 error: {_describe(err)}", required=False
            )
        return Check(
            name,
            False,
            "a PUT with a wrong x-amz-checksum-sha256 was stored (every read is still "
            "verified against its manifest)",
            required=False,
        )

    async def listing_complete(self) -> Check:
        """Every key listed exactly once across pages of 2 keys. Not their order: the
        store sorts what it lists (SeaweedFS lists ``a/b`` before ``a-b``, S3 after)."""
        name = "listing_complete"
        base = "order/"
        try:
            for item in _ORDER_NAMES:
                await self.put(base + item, b"")
            listed: list[str] = []
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self.folder + base,
                "MaxKeys": 2,
            }
            for _ in range(len(_ORDER_NAMES) + 2):
                page = await self.client.list_objects_v2(**params)
                listed.extend(
                    obj["Key"][len(self.folder + base) :] for obj in page.get("Contents", [])
                )
                if not page.get("IsTruncated"):
                    break
                params["ContinuationToken"] = page["NextContinuationToken"]
        except _FAILURES as err:
            return Check(name, False, f"LIST failed: {_describe(err)}")
        if sorted(listed) != sorted(_ORDER_NAMES):
            lost = sorted(set(_ORDER_NAMES) - set(listed))
            extra = sorted(name for name in set(listed) if listed.count(name) > 1)
            return Check(
                name,
                False,
                f"pages of 2 keys listed {listed!r}: lost {lost!r}, repeated {extra!r}",
            )
        return Check(name, True, f"{len(listed)} keys, each once, across pages of 2 keys")

    async def metadata_round_trip(self) -> Check:
        name = "metadata_round_trip"
        try:
            await self.put("metadata", b"", Metadata={"s3es-doctor": _METADATA_VALUE})
            response = await self.client.head_object(
                Bucket=self.bucket, Key=self.folder + "metadata"
            )
        except _FAILURES as err:
            return Check(name, False, f"PUT or HEAD failed: {_describe(err)}")
        got = response.get("Metadata", {}).get("s3es-doctor")
        if got != _METADATA_VALUE:
            return Check(name, False, f"sent {_METADATA_VALUE!r}, read back {got!r}")
        return Check(name, True, "manifest-shaped JSON came back byte for byte")

    async def ranged_get(self) -> Check:
        name = "ranged_get"
        body = bytes(range(256)) * 64
        key = self.folder + "ranged"
        try:
            await self.put("ranged", body)
            results = []
            # Explicit ranges only, as the store sends them (never the suffix form
            # "bytes=-N", which s3rver answers wrongly).
            last = len(body) - 1
            for spec, want in (
                (f"bytes={last - 99}-{last}", body[-100:]),
                ("bytes=10-19", body[10:20]),
            ):
                response = await self.client.get_object(Bucket=self.bucket, Key=key, Range=spec)
                async with response["Body"] as stream:
                    got = await stream.read()
                status = response["ResponseMetadata"]["HTTPStatusCode"]
                results.append((spec, status, got == want))
        except _FAILURES as err:
            return Check(name, False, f"ranged GET failed: {_describe(err)}")
        bad = [
            f"{spec} -> HTTP {status}"
            for spec, status, same in results
            if not same or status != 206
        ]
        if bad:
            return Check(name, False, "wrong answer for " + ", ".join(bad))
        return Check(name, True, "last and middle ranges answered 206 with the exact bytes")

    async def conditional_multipart_complete(self) -> Check:
        """Used when present: turns that outgrow ``max_turn_buffer_bytes`` stream as
        multipart uploads only where completion honours ``If-None-Match``."""
        name = "conditional_multipart_complete"
        key = self.folder + "multipart"
        self.written.add(key)
        try:
            probe = await probe_conditional_multipart_complete(self.client, self.bucket, key)
        except StorageError as err:
            return Check(name, False, f"multipart upload failed: {err}", required=False)
        if probe.honoured:
            return Check(name, True, probe.detail, required=False)
        return Check(
            name,
            False,
            f"{probe.detail}; the store does not stream large turns here (an append past "
            "max_turn_buffer_bytes raises UnsafeEndpointError)",
            required=False,
        )

    async def delete_objects(self) -> Check:
        name = "delete_objects"
        keys = sorted(self.written)
        try:
            response = await self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
            )
        except _FAILURES as err:
            return Check(name, False, f"DeleteObjects failed: {_describe(err)}")
        errors = response.get("Errors", [])
        left = await self.remaining()
        if errors or left:
            return Check(name, False, f"{len(errors)} error(s), {len(left)} key(s) left")
        return Check(name, True, f"{len(keys)} keys deleted in one request")

    async def remaining(self) -> list[str]:
        page = await self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.folder)
        return [obj["Key"] for obj in page.get("Contents", [])]

    async def clean_up(self) -> bool:
        """Delete anything left one key at a time (DeleteObjects may be what failed)."""
        try:
            async with asyncio.timeout(self.check_seconds):
                for key in await self.remaining():
                    await self.client.delete_object(Bucket=self.bucket, Key=key)
                return not await self.remaining()
        except _CLEAN_UP_FAILURES:
            return False


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def _describe(err: BaseException) -> str:
    code = error_code(err)
    if code is not None:
        return f"{code} (HTTP {http_status(err)})"
    return f"{type(err).__name__}: {err}"
