"""A store's configuration: frozen option groups, validated once, passed whole.

:class:`ClientSettings` says how to reach the endpoint (the bucket seam builds its
client from it); :class:`ReadOptions`, :class:`WriteOptions` and
:class:`EndpointCheck` are what the read path, the write path and the endpoint probe
need; :class:`StoreConfig` groups them. ``S3EventStore``'s keyword arguments stay a
convenience over :meth:`StoreConfig.from_options`, which checks them in a fixed order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from s3_eventstore.errors import ConfigurationError
from s3_eventstore.format.keys import KeyLayout
from s3_eventstore.format.turn import TurnCodec

__all__ = [
    "DEFAULT_MAX_BUFFER_BYTES",
    "DEFAULT_MAX_TURN_BUFFER_BYTES",
    "DEFAULT_PART_BYTES",
    "ENCODE_IN_THREAD_BYTES",
    "MIN_PART_BYTES",
    "ClientSettings",
    "EndpointCheck",
    "ReadOptions",
    "StoreConfig",
    "WriteOptions",
    "client_config",
]

DEFAULT_MAX_TURN_BUFFER_BYTES: Final = 8 << 20
"""A turn buffering this many bytes of JSON lines is streamed to S3 from then on."""
DEFAULT_MAX_BUFFER_BYTES: Final = 256 << 20
"""Bytes all open turns of one store may hold in memory before ``append`` refuses."""
DEFAULT_PART_BYTES: Final = 8 << 20
"""Compressed bytes per multipart part of a streamed turn (S3 needs >= 5 MiB)."""
MIN_PART_BYTES: Final = 5 * 1024 * 1024
"""S3's minimum size of every part but the last."""
ENCODE_IN_THREAD_BYTES: Final = 1 << 20
"""Turns larger than this are compressed (and decompressed) on a worker thread, to keep the
event loop live."""
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to reach the endpoint. Credentials and region come from the standard AWS chain."""

    endpoint_url: str | None = None
    """``None`` for AWS; e.g. ``http://127.0.0.1:9000`` for MinIO or a local server."""
    region_name: str | None = None
    """Region; ``None`` reads ``AWS_REGION``/``AWS_DEFAULT_REGION``/the profile."""
    profile_name: str | None = None
    """A named profile; ``None`` reads ``AWS_PROFILE``."""
    max_attempts: int = 5
    """Total attempts per request (botocore retries: throttling, 5xx, network faults)."""
    retry_mode: str = "standard"
    """botocore retry mode: ``standard`` (exponential backoff with jitter) or ``adaptive``."""
    connect_timeout: float = 5.0
    """Seconds to open a connection."""
    read_timeout: float = 30.0
    """Seconds to wait for a response."""
    max_pool_connections: int = 64
    """HTTP connection pool size; keep it at least the store's read concurrency."""
    addressing_style: str | None = None
    """``path`` or ``virtual``; ``None`` lets botocore choose (path for IP endpoints)."""
    share_client: bool = True
    """Share one client (parsed service model, connection pool) with every store of equal
    settings on the same event loop; see :mod:`s3_eventstore.s3.pool`."""
    checksum_headers: bool = True
    """Send ``x-amz-checksum-sha256`` with every upload (S3 verifies what it stores).
    ``False`` sends no checksum header an operation does not require, for S3-compatible
    servers that answer 400 to them; every object is still verified against its
    manifest's SHA-256 when read. botocore's automatic checksums are ``when_required``
    either way."""


def client_config(settings: ClientSettings, http_session_cls: Any = None) -> Any:
    """The aiobotocore ``AioConfig`` for ``settings`` (and an HTTP session class, if given)."""
    from aiobotocore.config import AioConfig

    s3_options: dict[str, Any] = {}
    if settings.addressing_style:
        s3_options["addressing_style"] = settings.addressing_style
    extra: dict[str, Any] = {}
    if http_session_cls is not None:
        extra["http_session_cls"] = http_session_cls
    return AioConfig(
        **extra,
        # botocore's "max_attempts" counts retries; "total_max_attempts" counts attempts.
        retries={"mode": settings.retry_mode, "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=settings.max_pool_connections,
        s3=s3_options or None,
        # The store asks for checksums explicitly where it wants them (PutObject); the
        # newer "when_supported" default breaks some S3-compatible servers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """What the read path needs."""

    read_concurrency: int = 16
    """Maximum GET/HEAD requests in flight for one read."""
    manifest_cache_size: int = 10_000
    """Manifests remembered (they make ``event_count`` LIST-only)."""


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """What the write path needs."""

    compression_level: int = 3
    """zstd level for turn objects (1..22)."""
    max_turn_buffer_bytes: int = DEFAULT_MAX_TURN_BUFFER_BYTES
    """JSON-line bytes one turn buffers before it is streamed to S3."""
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES
    """Bytes all open turns may hold in memory together."""
    multipart_part_bytes: int = DEFAULT_PART_BYTES
    """Compressed bytes per part of a streamed turn."""
    max_parts_in_flight: int = 2
    """Parts of one streamed turn waiting for upload before appends wait."""
    dictionary_id: str | None = None
    """The trained dictionary new turns are compressed with (``None``: plain zstd)."""
    persist: PersistPolicy | None = None
    """Automatic persistence of open turns (``None``: only ``flush``/``close`` persist)."""


@dataclass(frozen=True, slots=True)
class PersistPolicy:
    """When an ``append`` persists its open turn by itself (docs/FORMAT.md 11.4): once the
    turn holds this many unpersisted events, bytes, or seconds' worth (any that is set)."""

    every_events: int | None = None
    """Unpersisted events of one turn that trigger a persist."""
    every_bytes: int | None = None
    """Unpersisted JSON-line bytes of one turn that trigger a persist."""
    every_seconds: float | None = None
    """Seconds since the turn's oldest unpersisted event that trigger a persist (checked
    at each append)."""

    def due(self, events: int, size: int, oldest: float, now: float) -> bool:
        """Whether a turn with this much unpersisted is due."""
        return (
            (self.every_events is not None and events >= self.every_events)
            or (self.every_bytes is not None and size >= self.every_bytes)
            or (
                self.every_seconds is not None and events > 0 and now - oldest >= self.every_seconds
            )
        )


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """Whether to probe that the endpoint honours ``If-None-Match: *`` before writing."""

    check_endpoint: bool | None = None
    """``None``: probe every endpoint that is not AWS, loopback included (once per
    endpoint per process); ``True``: probe even AWS; ``False``: never."""
    allow_unsafe_endpoint: bool = False
    """Write even when the probe finds the condition ignored (a warning is logged)."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Everything an ``S3EventStore`` is configured with, validated."""

    bucket: str
    """Bucket name."""
    layout: KeyLayout
    """The key layout of the store's (normalised) prefix."""
    client: ClientSettings
    """How to reach the endpoint."""
    operation_timeout: float | None
    """Bound on the total time of one S3 call, retries included (``None``: unbounded)."""
    read: ReadOptions
    """Read path options."""
    write: WriteOptions
    """Write path options."""
    endpoint_check: EndpointCheck
    """Endpoint probe options."""

    @classmethod
    def from_options(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        profile_name: str | None = None,
        compression_level: int = 3,
        read_concurrency: int = 16,
        manifest_cache_size: int = 10_000,
        max_attempts: int = 5,
        retry_mode: str = "standard",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        addressing_style: str | None = None,
        share_client: bool = True,
        operation_timeout: float | None = 60.0,
        max_turn_buffer_bytes: int = DEFAULT_MAX_TURN_BUFFER_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        multipart_part_bytes: int = DEFAULT_PART_BYTES,
        max_parts_in_flight: int = 2,
        check_endpoint: bool | None = None,
        allow_unsafe_endpoint: bool = False,
        dictionary_id: str | None = None,
        persist_every_events: int | None = None,
        persist_every_bytes: int | None = None,
        persist_every_seconds: float | None = None,
        checksum_headers: bool = True,
    ) -> StoreConfig:
        """Validate the constructor's keyword arguments (see ``S3EventStore``) and group them.

        Raises:
            ConfigurationError: bucket, prefix, limits or dictionary id are unusable.
        """
        if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket):
            raise ConfigurationError(f"{bucket!r} is not a valid bucket name")
        if type(read_concurrency) is not int or read_concurrency < 1:
            raise ConfigurationError("read_concurrency must be a positive int")
        if retry_mode not in ("standard", "adaptive", "legacy"):
            raise ConfigurationError(f"unknown retry_mode {retry_mode!r}")
        if type(max_attempts) is not int or max_attempts < 1:
            raise ConfigurationError("max_attempts must be a positive int")
        if type(share_client) is not bool:
            raise ConfigurationError(f"share_client must be True or False, not {share_client!r}")
        if type(checksum_headers) is not bool:
            raise ConfigurationError(f"checksum_headers must be a bool, not {checksum_headers!r}")
        if operation_timeout is not None and (
            isinstance(operation_timeout, bool)
            or not isinstance(operation_timeout, int | float)
            or not 0 < operation_timeout < float("inf")
        ):
            raise ConfigurationError("operation_timeout must be a positive number of seconds")
        for name, value, least in (
            ("max_turn_buffer_bytes", max_turn_buffer_bytes, 1),
            ("max_buffer_bytes", max_buffer_bytes, 1),
            ("multipart_part_bytes", multipart_part_bytes, MIN_PART_BYTES),
            ("max_parts_in_flight", max_parts_in_flight, 1),
        ):
            if type(value) is not int or value < least:
                raise ConfigurationError(f"{name} must be an int >= {least}, not {value!r}")
        for name, bound in (
            ("persist_every_events", persist_every_events),
            ("persist_every_bytes", persist_every_bytes),
        ):
            if bound is not None and (type(bound) is not int or bound < 1):
                raise ConfigurationError(f"{name} must be None or a positive int")
        if persist_every_seconds is not None and (
            isinstance(persist_every_seconds, bool)
            or not isinstance(persist_every_seconds, int | float)
            or not 0 <= persist_every_seconds < float("inf")
        ):
            raise ConfigurationError("persist_every_seconds must be None or seconds >= 0")
        persist = None
        if (persist_every_events, persist_every_bytes, persist_every_seconds) != (None,) * 3:
            persist = PersistPolicy(
                persist_every_events, persist_every_bytes, persist_every_seconds
            )
        try:
            TurnCodec(compression_level)
        except ValueError as err:
            raise ConfigurationError(str(err)) from None
        layout = KeyLayout.for_prefix(prefix)
        if dictionary_id is not None:
            layout.dictionary_key(dictionary_id)  # refuse a malformed id now
        return cls(
            bucket=bucket,
            layout=layout,
            client=ClientSettings(
                endpoint_url=endpoint_url,
                region_name=region_name,
                profile_name=profile_name,
                max_attempts=max_attempts,
                retry_mode=retry_mode,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=max(64, read_concurrency * 2),
                addressing_style=addressing_style,
                share_client=share_client,
                checksum_headers=checksum_headers,
            ),
            operation_timeout=operation_timeout,
            read=ReadOptions(read_concurrency, manifest_cache_size),
            write=WriteOptions(
                compression_level,
                max_turn_buffer_bytes,
                max_buffer_bytes,
                multipart_part_bytes,
                max_parts_in_flight,
                dictionary_id,
                persist,
            ),
            endpoint_check=EndpointCheck(check_endpoint, allow_unsafe_endpoint),
        )

    @property
    def url(self) -> str:
        """``s3://bucket/prefix`` of the store."""
        return f"s3://{self.bucket}/{self.layout.prefix}"
