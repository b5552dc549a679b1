"""The sync facade: any async :class:`EventStore` driven from threads and foreign event loops.

Some frameworks call their persistence hooks synchronously (strands), others run an
agent in a thread with an event loop of its own (``Runner.run_sync`` of the OpenAI
Agents SDK). An aiobotocore client belongs to the loop it was created on, so the store
must always run on *one* loop. :class:`LoopThread` is that loop, private, in a daemon
thread; two thin views forward every call to the one async implementation there:

* :class:`SyncEventStore` — blocking methods, for synchronous hooks;
* :class:`LoopBoundEventStore` — an async :class:`EventStore` usable from any loop.

There is no second, synchronous implementation of anything: both views submit the
store's own coroutine to the loop thread and hand back its result, or its exception
object unchanged (same type, same attributes, ``__cause__`` kept).

Pitfalls this module handles, each with a test (``tests/test_sync_facade.py``):

* called from inside a running event loop (a sync hook inside an async framework):
  fine, the call blocks that loop's thread while the private loop does the work — the
  hook's own contract is blocking. ``asyncio.run`` would refuse here.
* called from the loop thread itself (a callback scheduled on it): raises
  :class:`SyncFacadeError` at once instead of deadlocking.
* close: runs the store's ``close()`` (if it has one) on its loop, cancels what is
  left, stops and joins the thread. Calls after close raise :class:`SyncFacadeError`.
  Loop threads still open when the interpreter exits are closed by an ``atexit`` hook.
* a caller interrupted while waiting (``KeyboardInterrupt``, a timeout, cancellation of
  an awaiting task) cancels the call on the loop thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import inspect
import threading
import weakref
from typing import TYPE_CHECKING, Any, Self, TypeVar

from s3_eventstore.errors import SyncFacadeError
from s3_eventstore.store import EventStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from s3_eventstore.envelope import AgentEventEnvelope, StoredTurnEvents

__all__ = ["LoopBoundEventStore", "LoopThread", "SyncEventStore"]

_T = TypeVar("_T")

_live: weakref.WeakSet[LoopThread] = weakref.WeakSet()
_live_views: weakref.WeakSet[_Forwarding] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    """Close facades still open at interpreter exit (their stores first, then the loops)."""
    for view in list(_live_views):
        with contextlib.suppress(Exception):  # exiting: one failing close must not stop the rest
            view.close()
    for loop_thread in list(_live):
        loop_thread.close(timeout=5.0)


class LoopThread:
    """One private asyncio event loop, running in a daemon thread until :meth:`close`.

    Args:
        name: The thread's name (shows up in thread dumps and logs).

    Thread-safe: any number of threads may call :meth:`run` at once; their coroutines
    run concurrently on the one loop.
    """

    def __init__(self, name: str = "s3-eventstore-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._state_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        _live.add(self)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._ready.set)
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop (submit to it only through this object's methods)."""
        return self._loop

    @property
    def closed(self) -> bool:
        """True once :meth:`close` started."""
        return self._closed

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.current_thread() is self._thread

    def _submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        with self._state_lock:
            if self._closed:
                coroutine.close()
                raise SyncFacadeError("the event-loop thread is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coroutine`` on the loop thread and block until it is done.

        Works from any thread, including one whose own event loop is running. The
        coroutine's exception is re-raised here as the same object.

        Args:
            coroutine: The coroutine to run (consumed even when this raises).
            timeout: Seconds to wait; on expiry the call is cancelled on the loop and
                ``TimeoutError`` is raised.

        Raises:
            SyncFacadeError: the loop thread is closed (also while the call ran), or this
                is the loop thread itself.
            TimeoutError: ``timeout`` expired.
        """
        if self.in_loop_thread():
            coroutine.close()
            raise SyncFacadeError(
                "a blocking call from the facade's own event-loop thread would deadlock; "
                "await the async store there instead"
            )
        future = self._submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the call did not finish within {timeout} s") from None
        except concurrent.futures.CancelledError:
            raise SyncFacadeError("the event-loop thread closed while the call ran") from None
        except BaseException:
            future.cancel()  # KeyboardInterrupt or SystemExit while waiting: stop the call
            raise

    async def run_async(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coroutine`` on the loop thread from any other event loop.

        Cancelling the awaiting task cancels the call on the loop thread.

        Raises:
            SyncFacadeError: the loop thread is closed (also while the call ran).
        """
        if asyncio.get_running_loop() is self._loop:
            return await coroutine
        future = self._submit(coroutine)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                # the loop thread was closed under the call; this task was not cancelled
                raise SyncFacadeError("the event-loop thread closed while the call ran") from None
            raise

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancel what still runs on the loop, stop it and join its thread. Idempotent.

        Args:
            timeout: Seconds to wait for the thread to stop.

        Raises:
            SyncFacadeError: called from the loop thread itself.
        """
        if self.in_loop_thread():
            raise SyncFacadeError("close() the loop thread from another thread")
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        _live.discard(self)
        if self._loop.is_running():
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._loop.shutdown_asyncgens()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _close_store(store: EventStore, *, flush: bool = True) -> None:
    """The store's ``close()`` (``close(flush=False)`` when asked; the default of every
    store's close persists open turns), awaited when it is a coroutine."""
    close: Callable[..., Any] | None = getattr(store, "close", None)
    if close is not None:
        result = close() if flush else close(flush=False)
        if inspect.isawaitable(result):
            await result


class _Forwarding:
    """What both views share: the store, its loop thread, and who closes what."""

    def __init__(self, store: EventStore, loop_thread: LoopThread | None = None) -> None:
        if not isinstance(store, EventStore):
            raise TypeError(f"expected an EventStore, not {type(store).__name__}")
        self.store = store
        """The async store every call runs on (only ever on the loop thread)."""
        self._owns_loop = loop_thread is None
        self.loop_thread = loop_thread if loop_thread is not None else LoopThread()
        """The loop thread the store lives on."""
        self._closed = False
        _live_views.add(self)

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coroutine.close()
            raise SyncFacadeError("the facade is closed")
        return self.loop_thread.run(coroutine)

    async def _arun(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coroutine.close()
            raise SyncFacadeError("the facade is closed")
        return await self.loop_thread.run_async(coroutine)

    def close(self, *, flush: bool = True) -> None:
        """Close the store (its ``close()``, on its loop: an S3 store persists its open
        turns first), then the loop thread if this view created it. Idempotent once it
        returned.

        When the store's close raises while persisting (``flush``, the default) — a
        request failed, or another writer finished one of the open turns and its events
        are handed back — the facade stays open, so that calling ``close`` again retries
        what is left (each refused turn is raised once); ``close(flush=False)`` gives up
        on the open turns and always closes.

        Args:
            flush: Persist open turns first (the store's own default); ``False`` drops
                them with the store.

        Raises:
            SyncFacadeError: called from the loop thread itself.
            TurnAlreadyFinishedError: as the store's ``close``.
            StorageError: as the store's ``close``.
        """
        if self.loop_thread.in_loop_thread():
            raise SyncFacadeError("close() the facade from another thread")
        if self._closed or self.loop_thread.closed:
            self._closed = True
            return
        if flush:
            self.loop_thread.run(_close_store(self.store))  # raises: stay open for a retry
        self._closed = True
        _live_views.discard(self)
        try:
            if not flush:
                self.loop_thread.run(_close_store(self.store, flush=False))
        finally:
            if self._owns_loop:
                self.loop_thread.close()


class SyncEventStore(_Forwarding):
    """Blocking twin of an async :class:`EventStore`: each method runs the store's own
    coroutine on a private loop thread and waits for it.

    Hand the store over before its first use (an S3 store opens its client lazily on the
    loop that first uses it). Several facades may share one :class:`LoopThread`.

    Args:
        store: The async store (``S3EventStore``, ``InMemoryEventStore``, any wrapper).
        loop_thread: The loop to run on; ``None`` starts a private one, closed by
            :meth:`close`.

    Every method raises what the store raises, plus :class:`SyncFacadeError` when the
    facade is closed or called from its own loop thread.
    """

    def flush(self) -> None:
        """:meth:`EventStore.flush`, blocking: persist every open turn of the store now.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
            TurnAlreadyFinishedError: as the store's ``flush``.
            StorageError: as the store's ``flush``.
        """
        self._run(self.store.flush())

    def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """:meth:`EventStore.append`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        self._run(self.store.append(thread_id, turn, envelope))

    def finish_turn(self, thread_id: str, turn: int) -> None:
        """:meth:`EventStore.finish_turn`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        self._run(self.store.finish_turn(thread_id, turn))

    def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """:meth:`EventStore.get_turn`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        return self._run(self.store.get_turn(thread_id, turn))

    def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """:meth:`EventStore.get_turns`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        return self._run(self.store.get_turns(thread_id))

    def clear(self, thread_id: str) -> None:
        """:meth:`EventStore.clear`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        self._run(self.store.clear(thread_id))

    def get_events(self, thread_id: str) -> list[AgentEventEnvelope]:
        """:meth:`EventStore.get_events`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        return self._run(self.store.get_events(thread_id))

    def event_count(self, thread_id: str) -> int:
        """:meth:`EventStore.event_count`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        return self._run(self.store.event_count(thread_id))

    def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """:meth:`EventStore.get_events_since`, blocking.

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """
        return self._run(self.store.get_events_since(thread_id, offset))

    def call(self, function: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        """Run any coroutine function on the store's loop, blocking: ``call(f, x)`` awaits
        ``f(x)`` there. For helpers built on the store (adapters, operator tools).

        Raises:
            SyncFacadeError: closed, or called from the loop thread.
        """

        async def invoke() -> _T:
            return await function(*args, **kwargs)

        return self._run(invoke())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LoopBoundEventStore(_Forwarding, EventStore):
    """An async :class:`EventStore` that may be awaited from any event loop in any thread:
    each call runs on the wrapped store's loop thread.

    Use it when one store serves code on several loops — ``Runner.run_sync`` of the
    OpenAI Agents SDK runs each agent on a fresh loop in the calling thread.

    Args:
        store: The async store to share.
        loop_thread: The loop it lives on; ``None`` starts a private one.

    Every method raises what the store raises, plus :class:`SyncFacadeError` when closed.
    """

    async def flush(self) -> None:
        """See :meth:`EventStore.flush`.

        Raises:
            SyncFacadeError: closed.
        """
        await self._arun(self.store.flush())

    async def append(self, thread_id: str, turn: int, envelope: AgentEventEnvelope) -> None:
        """See :meth:`EventStore.append`.

        Raises:
            SyncFacadeError: closed.
        """
        await self._arun(self.store.append(thread_id, turn, envelope))

    async def finish_turn(self, thread_id: str, turn: int) -> None:
        """See :meth:`EventStore.finish_turn`.

        Raises:
            SyncFacadeError: closed.
        """
        await self._arun(self.store.finish_turn(thread_id, turn))

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """See :meth:`EventStore.get_turn`.

        Raises:
            SyncFacadeError: closed.
        """
        return await self._arun(self.store.get_turn(thread_id, turn))

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """See :meth:`EventStore.get_turns`.

        Raises:
            SyncFacadeError: closed.
        """
        return await self._arun(self.store.get_turns(thread_id))

    async def clear(self, thread_id: str) -> None:
        """See :meth:`EventStore.clear`.

        Raises:
            SyncFacadeError: closed.
        """
        await self._arun(self.store.clear(thread_id))

    async def get_events(self, thread_id: str) -> list[AgentEventEnvelope]:
        """See :meth:`EventStore.get_events`.

        Raises:
            SyncFacadeError: closed.
        """
        return await self._arun(self.store.get_events(thread_id))

    async def event_count(self, thread_id: str) -> int:
        """See :meth:`EventStore.event_count`.

        Raises:
            SyncFacadeError: closed.
        """
        return await self._arun(self.store.event_count(thread_id))

    async def get_events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """See :meth:`EventStore.get_events_since`.

        Raises:
            SyncFacadeError: closed.
        """
        return await self._arun(self.store.get_events_since(thread_id, offset))

    async def discard_turn(self, thread_id: str, turn: int) -> tuple[AgentEventEnvelope, ...]:
        """The wrapped store's ``discard_turn`` (``S3EventStore``), or ``()`` without one.

        Raises:
            SyncFacadeError: closed.
            StorageError: as ``S3EventStore.discard_turn``.
        """
        discard = getattr(self.store, "discard_turn", None)
        if discard is None:
            return ()
        result: tuple[AgentEventEnvelope, ...] = await self._arun(discard(thread_id, turn))
        return result

    async def aclose(self, *, flush: bool = True) -> None:
        """:meth:`close` without blocking the calling loop (the awaitable close that
        callers of an async store, and the conformance kit, use).

        Args:
            flush: Persist open turns first (default); ``False`` drops them.

        Raises:
            SyncFacadeError: called from the loop thread itself.
            TurnAlreadyFinishedError: as the store's ``close``.
            StorageError: as the store's ``close`` (the facade stays open: retry).
        """
        await asyncio.to_thread(self.close, flush=flush)
