"""Which archived turns the Parquet tier does not hold yet, and reading them.

One flat LIST of ``threads/`` finds every turn object and segment. A turn object whose
``(thread, turn)`` the log does not name is pending; so is a segment that the log does
not name and whose turn range is not wholly published (its index alone says which turns
it holds). Pending turns are read through the store, which verifies every object and
resolves compacted threads, so a turn is read exactly as ``get_turn``/``get_turns`` read it.

Open (persisted, unfinished) turns are listed like finished ones — a LIST cannot tell them
apart — and cost their GET on every run until they finish; the reader then drops them
(``publish`` never publishes an open turn) or yields them with ``finished=False`` (the
``events`` view shows them). Compaction stubs (8-byte objects at turn keys) stand for
their turns: a stub of a published turn is skipped like the object it replaced.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from s3_eventstore.format.keys import parse_segment_name

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.ops.columnar.log import PublishedState
    from s3_eventstore.s3.store import S3EventStore

__all__ = ["PendingThread", "ReadTurn", "find_pending", "payload_sha256", "read_pending"]

_RANGE_SCAN_LIMIT: Final = 100_000
"""A segment range wider than this is read rather than checked number by number."""


@dataclass(slots=True)
class PendingThread:
    """What one thread has that the tier does not."""

    thread_id: str
    turns: set[int] = field(default_factory=set)
    """Turn objects not yet published."""
    segments: list[str] = field(default_factory=list)
    """Segment keys (relative to the prefix) that may hold unpublished turns: the whole
    thread is then read with ``get_turns`` (one GET per object of the thread)."""

    @property
    def reads(self) -> int:
        """GETs the thread costs (approximately: a turn object that compaction moved into
        a segment after the LIST costs a few more)."""
        return len(self.turns) if not self.segments else len(self.turns) + len(self.segments)


@dataclass(frozen=True, slots=True)
class ReadTurn:
    """One pending turn as read from the archive."""

    thread_id: str
    turn: int
    events: tuple[AgentEventEnvelope, ...]
    sha256: str
    finished: bool = True
    """``False`` for an open turn (only with ``include_open``): never published."""


def payload_sha256(events: tuple[AgentEventEnvelope, ...]) -> str:
    """SHA-256 of a turn's payload (the manifest's ``sha256``)."""
    digest = hashlib.sha256()
    for event in events:
        digest.update(event.to_json())
        digest.update(b"\n")
    return digest.hexdigest()


async def find_pending(store: S3EventStore, state: PublishedState) -> list[PendingThread]:
    """Every thread with turns the log does not publish, from one flat LIST of ``threads/``.

    Costs one ListObjectsV2 per 1000 objects; nothing is read.

    Raises:
        StorageError: a LIST failed.
    """
    layout = store.layout
    pending: dict[str, PendingThread] = {}
    published = state.turns
    async for page in store.list_pages(layout.threads_root):
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            parsed = layout.parse_key(key)
            if parsed is not None:
                if (parsed.thread_id, parsed.turn) not in published:
                    entry = pending.setdefault(parsed.thread_id, PendingThread(parsed.thread_id))
                    entry.turns.add(parsed.turn)
                continue
            folder, _, name = key.rpartition("/")
            segment = parse_segment_name(name)
            thread_id = layout.thread_of_folder(folder + "/") if segment else None
            if segment is None or thread_id is None:
                continue  # not ours to publish (readers skip it too)
            relative = key[len(layout.prefix) :]
            if relative in state.segments:
                continue
            span = segment.last_turn - segment.first_turn + 1
            if span <= _RANGE_SCAN_LIMIT and all(
                (thread_id, turn) in published
                for turn in range(segment.first_turn, segment.last_turn + 1)
            ):
                continue
            pending.setdefault(thread_id, PendingThread(thread_id)).segments.append(relative)
    return list(pending.values())


async def read_pending(
    store: S3EventStore,
    threads: list[PendingThread],
    state: PublishedState,
    *,
    window: int | None = None,
    include_open: bool = False,
) -> AsyncIterator[ReadTurn]:
    """The pending turns, read and verified by the store, ``window`` threads at a time.

    Turns of a thread with pending segments come from one ``get_turns``; other turns from
    one ``get_turn`` each. Turns the log publishes meanwhile are still yielded: the caller
    decides at commit time. Open turns are skipped unless ``include_open`` (then they come
    with ``finished=False``, as the store read them at that moment).

    Raises:
        IntegrityError: an object failed verification, or two copies of a turn disagree.
        StorageError: a request failed.
    """
    semaphore = asyncio.Semaphore(window or store.read_concurrency)

    async def one_turn(thread_id: str, turn: int) -> list[ReadTurn]:
        async with semaphore:
            stored = await store.get_turn(thread_id, turn)
        if stored is None or not (stored.finished or include_open):
            return []  # deleted (cleared) since the LIST, or open
        return [
            ReadTurn(thread_id, turn, stored.events, payload_sha256(stored.events), stored.finished)
        ]

    async def whole_thread(pending: PendingThread) -> list[ReadTurn]:
        async with semaphore:
            stored_turns = await store.get_turns(pending.thread_id)
        return [
            ReadTurn(pending.thread_id, s.turn, s.events, payload_sha256(s.events), s.finished)
            for s in stored_turns
            if (s.finished or include_open) and (pending.thread_id, s.turn) not in state.turns
        ]

    jobs: list[Callable[[], Awaitable[list[ReadTurn]]]] = []
    for pending in threads:
        if pending.segments:
            jobs.append(functools.partial(whole_thread, pending))
        else:
            jobs.extend(
                functools.partial(one_turn, pending.thread_id, t) for t in sorted(pending.turns)
            )
    batch = max(1, (window or store.read_concurrency) * 4)
    for start in range(0, len(jobs), batch):
        tasks = [asyncio.ensure_future(job()) for job in jobs[start : start + batch]]
        try:
            for task in tasks:
                for read in await task:
                    yield read
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
