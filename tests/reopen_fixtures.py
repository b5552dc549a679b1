"""Fresh S3EventStores on a test's bucket, as other processes (or later runs) open them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from s3_eventstore import S3EventStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.store import EventStore

PREFIX = "archive/v1"


@contextlib.asynccontextmanager
async def reopening(
    s3_server: EmbeddedS3Server, bucket: str, **options: Any
) -> AsyncIterator[Callable[[], Awaitable[EventStore]]]:
    """A factory of fresh stores on ``bucket``/``PREFIX``, each with its own client; all
    are closed on exit without flushing (a process that ends)."""
    async with contextlib.AsyncExitStack() as stack:

        async def fresh() -> EventStore:
            store = S3EventStore(
                bucket,
                PREFIX,
                endpoint_url=s3_server.endpoint_url,
                session=s3_server.session(),
                **options,
            )
            stack.push_async_callback(store.close, flush=False)
            return store

        yield fresh
