"""Compaction: merge a thread's finished turn objects into segments (docs/FORMAT.md §8).

The protocol, and why every state in between is safe:

1. LIST the thread folder. Turn objects whose number a segment's index already holds
   are left over from a compaction that died after its segment PUT: their copies are
   checked to agree (SHA-256) and they go straight to step 4.
2. Group the remaining turn objects, in turn order, into runs of at most
   ``max_segment_bytes``; GET and fully verify each turn (a corrupt turn must not be
   archived as if it were sound).
3. PUT each run's segment with ``If-None-Match: *``. A 412 is a concurrent or earlier
   run that wrote the same key: same index SHA-256 means the same content (a segment
   is determined by its turns), which counts as done.
4. Only then DeleteObjects the turn objects the segment holds (at most 1000 keys per
   request).

Readers handle each intermediate state: after step 3 a turn is in two places and reads
take it once (checking the copies agree); a reader that listed a turn object deleted in
step 4 before its GET lists again and finds the segment. Re-running compaction finishes
an interrupted one. Compaction only reads finished objects, so it never touches an open
turn, and it never makes a finish_turn lose a turn.

The hazard that remains: once step 4 deleted a turn object its key is free again, so a
late ``finish_turn`` of that turn number by a writer that never learnt the turn was
finished (another process) would succeed and create a second, different copy. Nothing
is lost or replaced: readers find two copies that disagree and raise
:class:`ConflictingCopiesError` naming both. Compact idle threads only (see
:func:`compact_idle`); an ``S3EventStore`` that has read a segment refuses to finish
any turn it holds, without a request.

Do not ``clear`` a thread while it is being compacted: a compaction that listed the
thread before the clear writes its segment after it, bringing the cleared turns back
(clear again, after the compaction ended).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import (
    ConfigurationError,
    ConflictingCopiesError,
    PreconditionFailedError,
    StorageError,
)
from s3_eventstore.format.keys import MAX_SEGMENT_EVENTS
from s3_eventstore.format.segment import (
    DEFAULT_MAX_SEGMENT_BYTES,
    SegmentIndex,
    SegmentManifest,
    build_segment,
)
from s3_eventstore.format.stream import TRAILER_BYTES
from s3_eventstore.identifiers import check_thread_id
from s3_eventstore.s3.listing import Relist, claim, relisting

if TYPE_CHECKING:
    from collections.abc import Iterable

    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.s3.listing import ListedTurn
    from s3_eventstore.s3.parts import StoreParts

__all__ = [
    "CompactionReport",
    "compact",
    "compact_idle",
    "compact_threads",
    "idle_threads",
]

logger = logging.getLogger("s3_eventstore")

DEFAULT_MIN_TURNS: Final = 2
"""Runs shorter than this stay as turn objects: a one-turn segment saves nothing."""


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What one :func:`compact` of one thread did."""

    thread_id: str
    """The thread compacted."""
    segments_written: tuple[str, ...] = ()
    """Keys of segments this run PUT (or found already written with the same content)."""
    turns_compacted: int = 0
    """Turns moved into those segments."""
    bytes_written: int = 0
    """Bytes of those segments."""
    objects_deleted: int = 0
    """Turn objects deleted, including leftovers of an interrupted earlier run."""
    turn_objects_left: tuple[int, ...] = ()
    """Turns left as their own objects (short runs, turns larger than a segment)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the CLI)."""
        return {
            "thread_id": self.thread_id,
            "segments_written": list(self.segments_written),
            "turns_compacted": self.turns_compacted,
            "bytes_written": self.bytes_written,
            "objects_deleted": self.objects_deleted,
            "turn_objects_left": list(self.turn_objects_left),
        }


@dataclass(slots=True)
class _Run:
    items: list[ListedTurn] = field(default_factory=list)
    size: int = 0


async def compact(
    store: StoreParts,
    thread_id: str,
    *,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    min_turns: int = DEFAULT_MIN_TURNS,
) -> CompactionReport:
    """Merge the thread's finished turn objects into segments, then delete them.

    Safe to interrupt at any point and to re-run (it finishes what an interrupted run
    left). Costs one ListObjectsV2 per 1000 objects, one GetObject per turn compacted,
    one PutObject per segment, one DeleteObjects per 1000 turn objects; plus, after an
    interrupted run, a ranged GetObject of each segment's index and a HeadObject per
    leftover turn object.

    Args:
        store: The store whose thread to compact.
        thread_id: The thread.
        max_segment_bytes: Bound on a segment's compressed size; a larger thread gets
            several segments, and a turn larger than this stays its own object.
        min_turns: Runs of fewer turn objects are left alone.

    Raises:
        InvalidThreadIdError: bad thread id.
        ConfigurationError: ``max_segment_bytes`` or ``min_turns`` is not a positive int.
        ConflictingCopiesError: a turn object and a segment holding the same turn disagree
            (nothing is deleted), or a segment with this content's key holds other content.
        IntegrityError: a turn object failed verification (nothing of its run is written).
        ObjectLockedError: retention kept turn objects from being deleted (the segment is
            written; readers take each turn once).
        StorageError: a request failed; re-run to finish.
    """
    check_thread_id(thread_id)
    for name, value in (("max_segment_bytes", max_segment_bytes), ("min_turns", min_turns)):
        if type(value) is not int or value < 1:
            raise ConfigurationError(f"{name} must be a positive int, not {value!r}")
    return await relisting(
        thread_id, lambda: _compact_once(store, thread_id, max_segment_bytes, min_turns)
    )


async def _compact_once(
    store: StoreParts, thread_id: str, max_segment_bytes: int, min_turns: int
) -> CompactionReport:
    reader = store.reader
    listing = await reader.list_thread(thread_id)
    listed, segments = listing.turns, listing.segments
    # 1. Leftovers of an interrupted run: turn objects a segment already holds.
    covering = [s for s in segments if any(s.covers(item.turn) for item in listed)]
    indexes = await reader.gather(reader.segments.index(s, thread_id) for s in covering)
    held: dict[int, tuple[str, str]] = {}
    for segment, index in zip(covering, indexes, strict=True):
        for entry in index.entries:
            claim(held, entry.turn, entry.manifest.sha256, segment.key)
    leftovers = [item for item in listed if item.turn in held]
    await reader.gather(reader.turns.check_copy(item, *held[item.turn]) for item in leftovers)
    deleted = await _delete(store, [item.key for item in leftovers])
    # 2-4. New segments from the remaining turn objects.
    runs, left = _plan([item for item in listed if item.turn not in held], max_segment_bytes)
    written: list[str] = []
    turns_compacted = bytes_written = 0
    for run in runs:
        if len(run.items) < min_turns:
            left.extend(item.turn for item in run.items)
            continue
        for key, body_size, items in await _write_segments(
            store, thread_id, run.items, max_segment_bytes
        ):
            written.append(key)
            turns_compacted += len(items)
            bytes_written += body_size
            deleted += await _delete(store, [item.key for item in items])
    return CompactionReport(
        thread_id=thread_id,
        segments_written=tuple(written),
        turns_compacted=turns_compacted,
        bytes_written=bytes_written,
        objects_deleted=deleted,
        turn_objects_left=tuple(sorted(left)),
    )


def _plan(items: list[ListedTurn], max_segment_bytes: int) -> tuple[list[_Run], list[int]]:
    """Group turn objects, in turn order, into runs of at most ``max_segment_bytes``."""
    runs: list[_Run] = []
    left: list[int] = []
    current = _Run()
    for item in items:
        if item.size > max_segment_bytes:
            left.append(item.turn)  # already as large as a segment: nothing to gain
            continue
        if current.items and current.size + item.size > max_segment_bytes:
            runs.append(current)
            current = _Run()
        current.items.append(item)
        current.size += item.size
    if current.items:
        runs.append(current)
    return runs, left


async def _write_segments(
    store: StoreParts, thread_id: str, items: list[ListedTurn], max_segment_bytes: int
) -> list[tuple[str, int, list[ListedTurn]]]:
    """GET and verify a run's turns, then PUT its segment(s). Returns (key, size, turns)."""
    turns = store.reader.turns
    fetched = await store.reader.gather(turns.fetch_object(item.key) for item in items)
    frames: list[tuple[TurnManifest, bytes]] = []
    for item, found in zip(items, fetched, strict=True):
        if found is None:  # deleted since the LIST: another compaction or a clear
            logger.info("compaction: %s vanished; listing again", item.key)
            raise Relist(item.key)
        body, _, manifest, streamed = found
        await turns.decode(body, manifest, item.key, thread_id, item.turn)  # verify all
        frames.append((manifest, body[:-TRAILER_BYTES] if streamed else body))
    results: list[tuple[str, int, list[ListedTurn]]] = []
    start = 0
    while start < len(frames):
        end, events = start, 0
        while end < len(frames) and events + frames[end][0].events <= MAX_SEGMENT_EVENTS:
            events += frames[end][0].events
            end += 1
        end = max(end, start + 1)
        segment_body, segment = build_segment(thread_id, frames[start:end])
        while len(segment_body) > max_segment_bytes and end - start > 1:
            end -= 1  # the index tipped it over the bound: one turn fewer
            segment_body, segment = build_segment(thread_id, frames[start:end])
        key = await _put_segment(store, thread_id, segment_body, segment)
        results.append((key, len(segment_body), items[start:end]))
        start = end
    return results


async def _put_segment(
    store: StoreParts, thread_id: str, body: bytes, manifest: SegmentManifest
) -> str:
    """PUT a segment with If-None-Match; an identical existing segment counts as written."""
    key = store.layout.segment_key(
        thread_id, manifest.first_turn, manifest.last_turn, manifest.events
    )
    try:
        etag = await store.objects.put(key, body, mode="create", metadata=manifest.to_metadata())
    except PreconditionFailedError:
        head = await store.objects.head(key)
        if head is None:
            raise StorageError(
                f"HeadObject {key} failed: the segment vanished after a 412",
                operation="HeadObject",
                code="NoSuchKey",
            ) from None
        existing = SegmentManifest.from_metadata(head.metadata, key=key)
        if (existing.index_sha256, existing.stored_bytes) != (
            manifest.index_sha256,
            manifest.stored_bytes,
        ):
            raise ConflictingCopiesError(
                "a segment with this key exists with other content (index sha256 "
                f"{existing.index_sha256}, not {manifest.index_sha256})",
                key=key,
                other_key=key,
            ) from None
        logger.info("compaction: %s exists with the same content: done already", key)
        etag = head.etag
    index = SegmentIndex.parse(manifest, body[manifest.index_offset :], key=key)
    store.reader.segments.learn_index(key, etag, index)
    return key


async def _delete(store: StoreParts, keys: list[str]) -> int:
    """DeleteObjects in batches of at most 1000 keys; returns how many were deleted."""
    return await store.objects.delete_keys(keys)


async def compact_threads(
    store: StoreParts,
    thread_ids: Iterable[str],
    *,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    min_turns: int = DEFAULT_MIN_TURNS,
    concurrency: int = 4,
) -> list[CompactionReport]:
    """Compact several threads, ``concurrency`` at a time; reports in the given order.

    Raises:
        As :func:`compact`, for the first thread that fails (the others run to the end).
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(thread_id: str) -> CompactionReport:
        async with semaphore:
            return await compact(
                store, thread_id, max_segment_bytes=max_segment_bytes, min_turns=min_turns
            )

    results = await asyncio.gather(*(one(t) for t in thread_ids), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, CompactionReport)]


async def idle_threads(
    store: StoreParts, idle_seconds: float, *, now: float | None = None, min_turns: int = 2
) -> list[str]:
    """Threads whose newest object is older than ``idle_seconds`` and that hold at least
    ``min_turns`` turn objects. Costs one ListObjectsV2 per 1000 objects under the prefix.

    Raises:
        StorageError: a LIST failed.
    """
    deadline = (time.time() if now is None else now) - idle_seconds
    newest: dict[str, float] = {}
    turn_objects: dict[str, int] = {}
    async for page in store.objects.list_objects(store.layout.threads_root):
        for obj in page:
            parsed = store.layout.parse_key(obj.key)
            folder = obj.key.rsplit("/", 1)[0] + "/"
            thread_id = parsed.thread_id if parsed else store.layout.thread_of_folder(folder)
            if thread_id is None:
                continue
            stamp = obj.last_modified or 0.0
            newest[thread_id] = max(newest.get(thread_id, 0.0), stamp)
            if parsed is not None:
                turn_objects[thread_id] = turn_objects.get(thread_id, 0) + 1
    return [
        thread_id
        for thread_id, stamp in newest.items()
        if stamp <= deadline and turn_objects.get(thread_id, 0) >= min_turns
    ]


async def compact_idle(
    store: StoreParts,
    idle_seconds: float,
    *,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    min_turns: int = DEFAULT_MIN_TURNS,
    concurrency: int = 4,
    now: float | None = None,
) -> list[CompactionReport]:
    """Compact every thread under the prefix that no object was written to for
    ``idle_seconds`` (the recommended way: see the module docstring's hazard).

    Raises:
        As :func:`compact_threads`.
    """
    threads = await idle_threads(store, idle_seconds, now=now, min_turns=min_turns)
    logger.info(
        "compacting %d thread(s) idle since %s",
        len(threads),
        datetime.fromtimestamp((time.time() if now is None else now) - idle_seconds, UTC),
    )
    return await compact_threads(
        store,
        threads,
        max_segment_bytes=max_segment_bytes,
        min_turns=min_turns,
        concurrency=concurrency,
    )
