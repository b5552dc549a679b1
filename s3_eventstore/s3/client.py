"""The S3 client a store uses: built from standard AWS configuration, or borrowed.

aioboto3 is imported only when a client is first needed, so importing the library
(and appending, which never makes a request) costs a serverless cold start nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AsyncExitStack

__all__ = ["ClientSettings", "open_client"]


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


def client_config(settings: ClientSettings) -> Any:
    """The aiobotocore ``AioConfig`` for ``settings``."""
    from aiobotocore.config import AioConfig

    s3_options: dict[str, Any] = {}
    if settings.addressing_style:
        s3_options["addressing_style"] = settings.addressing_style
    return AioConfig(
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


async def open_client(settings: ClientSettings, stack: AsyncExitStack, session: Any = None) -> Any:
    """Create an S3 client whose lifetime is bound to ``stack``."""
    import aioboto3

    session = session or aioboto3.Session(profile_name=settings.profile_name)
    client = session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region_name,
        config=client_config(settings),
    )
    return await stack.enter_async_context(client)
