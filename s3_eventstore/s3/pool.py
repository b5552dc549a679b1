"""Shared S3 clients: many stores, one parsed service model and one connection pool.

Creating an aiobotocore client costs 100-300 ms of CPU the first time: a botocore
session parses the S3 service model, its endpoint rules and ``endpoints.json``, and the
client's first request creates an aiohttp connector and an SSL context. A program that
opens a store per session, per request or per worker would pay that every time. So
stores given neither ``client`` nor ``session`` share, by default:

* one aiobotocore session per profile and AWS environment for the process (its loader
  caches the parsed models, so another client from it costs milliseconds, not hundreds
  of them; aioboto3 and boto3 are not even imported); its loader is
  :class:`~s3_eventstore.s3.loader.ServiceLoader`, which loads the same data with less
  work;
* one open client per (configuration, event loop), leased by reference count: stores
  with equal :class:`~s3_eventstore.s3.config.ClientSettings` on the same loop use the
  same client, hence the same connection pool. The last lease released closes it.
  aiohttp binds a connector to the loop that created it, so each loop has its own
  client, and a client whose loop has closed is dropped, never reused.

Requests stay counted per store: the shared client carries one ``before-send`` hook
that adds to whichever :class:`~s3_eventstore.s3.metrics.RequestCounter` the calling
task has set (:func:`counting`), so a store's ``requests`` never include another's.
"""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from s3_eventstore.s3.config import ClientSettings
    from s3_eventstore.s3.metrics import RequestCounter

__all__ = ["ClientLease", "active_clients", "lease_client", "shared_session"]

_ENVIRONMENT: Final = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)
"""What a botocore session reads from the environment once and keeps: sessions and
clients are shared only between stores that see the same values."""

CURRENT_COUNTER: ContextVar[RequestCounter | None] = ContextVar("s3es_counter", default=None)
"""The counter the running call's requests are added to (set by the bucket per call)."""


_Key = tuple["ClientSettings", tuple[str | None, ...], int]


@dataclass(slots=True, eq=False)
class _Shared:
    client: Any
    stack: AsyncExitStack
    loop: asyncio.AbstractEventLoop
    users: int = 0


@dataclass(slots=True, eq=False)
class ClientLease:
    """One user's share of a shared client. :meth:`release` it once (again is a no-op)."""

    client: Any
    _key: _Key
    _shared: _Shared
    _released: bool = False

    async def release(self) -> None:
        """Give the share back; the last one closes the client (on its own loop)."""
        if self._released:
            return
        self._released = True
        shared = self._shared
        with _lock:
            shared.users -= 1
            last = shared.users == 0
            if last and _clients.get(self._key) is shared:
                del _clients[self._key]
        if last and not shared.loop.is_closed():
            await shared.stack.aclose()


_lock = threading.Lock()
_sessions: dict[tuple[str | None, tuple[str | None, ...]], Any] = {}
_clients: dict[_Key, _Shared] = {}
_opening: dict[_Key, asyncio.Lock] = {}


def _environment() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _ENVIRONMENT)


def shared_session(profile_name: str | None) -> Any:
    """The process's aiobotocore session for ``profile_name`` and the current AWS
    environment, created on first use (it caches parsed models and credentials)."""
    from aiobotocore.session import AioSession

    from s3_eventstore.s3.loader import create_service_loader

    key = (profile_name, _environment())
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = AioSession(profile=profile_name)
            # The same data as botocore's loader, without listing every service first
            # and parsed with orjson (s3_eventstore.s3.loader).
            loader = create_service_loader(session.get_config_variable("data_path"))
            session.register_component("data_loader", loader)
            _sessions[key] = session
        return session


def active_clients() -> int:
    """Shared clients open now, over all loops (tests check that the last close closed)."""
    with _lock:
        _forget_closed_loops()
        return len(_clients)


def _forget_closed_loops() -> None:
    for key in [k for k, shared in _clients.items() if shared.loop.is_closed()]:
        del _clients[key]
        _opening.pop(key, None)


def _count(event_name: str = "", **_: Any) -> None:
    counter = CURRENT_COUNTER.get()
    if counter is not None:
        counter.attempts[event_name.rsplit(".", 1)[-1]] += 1


def _count_call(model: Any = None, **_: Any) -> None:
    counter = CURRENT_COUNTER.get()
    if counter is not None and model is not None:
        counter.calls[model.name] += 1


def count_by_context(client: Any) -> None:
    """Count ``client``'s requests into the counter each call names (``CURRENT_COUNTER``,
    set by :class:`~s3_eventstore.s3.client.DeadlineClient`). Registered once per client
    (idempotent), so any number of stores share it without adding hooks: a hook per
    store would make every request of a long-lived shared client call all of them."""
    events = client.meta.events
    events.register("before-call.s3", _count_call, unique_id="s3es-shared-call")
    events.register("before-send.s3", _count, unique_id="s3es-shared-send")


async def lease_client(
    settings: ClientSettings, open_client: Callable[[AsyncExitStack], Awaitable[Any]]
) -> ClientLease:
    """A share of the client for ``settings`` on the running loop, opened on first use.

    ``open_client(stack)`` creates a client bound to ``stack``; it runs once per
    (settings, loop) while shares are held.
    """
    loop = asyncio.get_running_loop()
    key: _Key = (settings, _environment(), id(loop))
    with _lock:
        _forget_closed_loops()
        opening = _opening.get(key)
        if opening is None:
            opening = _opening[key] = asyncio.Lock()
    async with opening:
        with _lock:
            shared = _clients.get(key)
            if shared is not None and shared.loop is loop:
                shared.users += 1
                return ClientLease(shared.client, key, shared)
        stack = AsyncExitStack()
        try:
            client = await open_client(stack)
        except BaseException:
            await stack.aclose()
            raise
        count_by_context(client)
        shared = _Shared(client, stack, loop, users=1)
        with _lock:
            _clients[key] = shared
        return ClientLease(client, key, shared)
