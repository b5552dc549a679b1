"""The aiobotocore client: created from the configuration, each call bounded in time.

aioboto3 is imported only when a client is first needed, so importing the library
(and appending, which never makes a request) costs a serverless cold start nothing.
Only :class:`~s3_eventstore.s3.bucket.Bucket` (and the doctor, which probes raw
endpoint behaviour) use this module.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

from s3_eventstore.s3.config import client_config

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from contextlib import AsyncExitStack

    from s3_eventstore.s3.config import ClientSettings

__all__ = ["DeadlineClient", "open_client"]

_T = TypeVar("_T")


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


class DeadlineClient:
    """An S3 client whose awaitable calls each end within ``timeout`` seconds.

    botocore bounds one attempt (connect and read timeouts) and the number of attempts,
    but not their sum with backoff: a caller with a deadline needs the sum bounded.
    """

    __slots__ = ("_client", "_timeout")

    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr
        timeout = self._timeout

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            # Coroutines only: botocore's synchronous helpers (meta, paginators) pass through.
            return _within(result, timeout) if asyncio.iscoroutine(result) else result

        return call


async def _within(awaitable: Awaitable[_T], seconds: float) -> _T:
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
