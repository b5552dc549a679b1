"""Compaction: merge a thread's finished turn objects into segments (docs/FORMAT.md §8, §11.5).

The protocol, and why every state in between is safe:

1. LIST the thread folder. A finished turn object whose turn a listed segment holds with
   the same SHA-256 is left over from a compaction that died after its segment PUT: it
   goes straight to step 4.
2. Group the other turn objects, in turn order, into runs of at most
   ``max_segment_bytes``; GET and fully verify each turn (a corrupt turn must not be
   archived as if it were sound). Open turn objects (suspended turns) are never
   compacted.
3. PUT each run's segment with ``If-None-Match: *``. A 412 is a concurrent or earlier
   run that wrote the same key: same index SHA-256 means the same content (a segment
   is determined by its turns), which counts as done.
4. Only then replace each turn object the segment holds by a **stub** (8 bytes, naming the
   segment) with ``If-Match:`` the ETag this compaction read. Turn keys are never
   deleted, so the barrier holds forever: a late ``finish_turn`` of a compacted turn
   meets the stub and is refused. A 412 (or 404) means someone else changed the key
   since (another compaction stubbed it; a clear, maybe followed by a new turn): it is
   left alone.

Readers handle each intermediate state (docs/FORMAT.md 11.3): after step 3 a turn is a
finished object and in a segment, and the object is read; after step 4 the stub sends
readers to the segment. A compaction that raced a ``clear`` writes a segment whose stubs
all fail: an orphan, which readers ignore (its turns have no key) and ``clear`` deletes.
Re-running compaction finishes an interrupted one.
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
from s3_eventstore.format.lifecycle import STUB_BODY, Stub, is_stub_size, open_manifest
from s3_eventstore.format.segment import (
    DEFAULT_MAX_SEGMENT_BYTES,
    SegmentIndex,
    SegmentManifest,
    build_segment,
)
from s3_eventstore.format.stream import TRAILER_BYTES, is_streamed, read_manifest
from s3_eventstore.identifiers import check_thread_id
from s3_eventstore.s3.listing import Relist, relisting
from s3_eventstore.s3.suspension import is_condition_failure

if TYPE_CHECKING:
    from collections.abc import Iterable

    from s3_eventstore.format.manifest import TurnManifest
    from s3_eventstore.s3.listing import ListedSegment, ListedTurn
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
    stubs_written: int = 0
    """Turn objects replaced by stubs, including leftovers of an interrupted earlier run."""
    turn_objects_left: tuple[int, ...] = ()
    """Turns left as their own objects (short runs, turns larger than a segment)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the CLI)."""
        return {
            "thread_id": self.thread_id,
            "segments_written": list(self.segments_written),
            "turns_compacted": self.turns_compacted,
            "bytes_written": self.bytes_written,
            "stubs_written": self.stubs_written,
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
    """Merge the thread's finished turn objects into segments, then replace them by stubs.

    Safe to interrupt at any point, to re-run (it finishes what an interrupted run left)
    and to run while writers finish other turns. Costs one ListObjectsV2 per 1000
    objects, one GetObject per turn compacted, one PutObject per segment and one PutObject
    (a stub) per turn compacted; plus, after an interrupted run, a ranged GetObject of each
    segment's index and a HeadObject per leftover turn object.

    Args:
        store: The store whose thread to compact.
        thread_id: The thread.
        max_segment_bytes: Bound on a segment's compressed size; a larger thread gets
            several segments, and a turn larger than this stays its own object.
        min_turns: Runs of fewer turn objects are left alone.

    Raises:
        InvalidThreadIdError: bad thread id.
        ConfigurationError: ``max_segment_bytes`` or ``min_turns`` is not a positive int.
        ConflictingCopiesError: a segment with this content's key holds other content (an
            orphan from before a ``clear``: delete it, or clear the thread).
        IntegrityError: a turn object failed verification (nothing of its run is written).
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
    objects = [item for item in listing.turns if not is_stub_size(item.size)]
    # 1. Leftovers of an interrupted run: finished objects a segment already holds.
    covering = [s for s in listing.segments if any(s.covers(item.turn) for item in objects)]
    indexes = await reader.gather(reader.segments.index(s, thread_id) for s in covering)
    held: dict[int, list[tuple[ListedSegment, str]]] = {}
    for segment, index in zip(covering, indexes, strict=True):
        for entry in index.entries:
            held.setdefault(entry.turn, []).append((segment, entry.manifest.sha256))
    manifests = await reader.gather(
        reader.turns.object_manifest(item) for item in objects if item.turn in held
    )
    leftovers: list[_StubTarget] = []
    for item, found in zip([i for i in objects if i.turn in held], manifests, strict=True):
        if found is None or found[1]:
            continue  # gone since the LIST, or an open turn
        manifest = found[0]
        for segment, sha256 in held[item.turn]:
            if sha256 == manifest.sha256:
                leftovers.append(
                    _StubTarget(item.key, item.etag, manifest, segment.key, segment.size)
                )
                break
    stubbed = await _stub(store, thread_id, leftovers)
    # 2-4. New segments from the other turn objects.
    done = {target.key for target in leftovers}
    runs, left = _plan([item for item in objects if item.key not in done], max_segment_bytes)
    written: list[str] = []
    turns_compacted = bytes_written = 0
    for run in runs:
        if len(run.items) < min_turns:
            left.extend(item.turn for item in run.items)
            continue
        segments, skipped = await _write_segments(
            store, thread_id, run.items, max_segment_bytes, min_turns
        )
        left.extend(skipped)
        for key, body_size, targets in segments:
            written.append(key)
            turns_compacted += len(targets)
            bytes_written += body_size
            stubbed += await _stub(store, thread_id, targets)
    return CompactionReport(
        thread_id=thread_id,
        segments_written=tuple(written),
        turns_compacted=turns_compacted,
        bytes_written=bytes_written,
        stubs_written=stubbed,
        turn_objects_left=tuple(sorted(left)),
    )


@dataclass(frozen=True, slots=True)
class _StubTarget:
    """A finished turn object to replace by a stub naming the segment that holds it."""

    key: str
    etag: str
    """The ETag this compaction read: the stub replaces that version or nothing."""
    manifest: TurnManifest
    segment_key: str
    segment_bytes: int


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
    store: StoreParts,
    thread_id: str,
    items: list[ListedTurn],
    max_segment_bytes: int,
    min_turns: int,
) -> tuple[list[tuple[str, int, list[_StubTarget]]], list[int]]:
    """GET and verify a run's turns, then PUT its segment(s). Returns (key, size, turns
    to stub) per segment, and the turns left as they are (open turns; a run that became
    shorter than ``min_turns``)."""
    fetched = await store.reader.gather(store.objects.get(item.key) for item in items)
    frames: list[tuple[TurnManifest, bytes]] = []
    sources: list[tuple[ListedTurn, str]] = []
    skipped: list[int] = []
    for item, found in zip(items, fetched, strict=True):
        if found is None:  # deleted since the LIST: a clear
            logger.info("compaction: %s vanished; listing again", item.key)
            raise Relist(item.key)
        if open_manifest(found.metadata, key=item.key) is not None:
            skipped.append(item.turn)  # a suspended turn: never compacted
            continue
        if Stub.from_metadata(found.metadata, key=item.key) is not None:
            continue  # another compaction stubbed it since the LIST
        manifest = read_manifest(found.metadata, found.body, key=item.key)
        await store.reader.turns.decode(found.body, manifest, item.key, thread_id, item.turn)
        streamed = is_streamed(found.metadata)
        frames.append((manifest, found.body[:-TRAILER_BYTES] if streamed else found.body))
        sources.append((item, found.etag))
    if len(frames) < min_turns:
        return [], skipped + [item.turn for item, _ in sources]
    results: list[tuple[str, int, list[_StubTarget]]] = []
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
        targets = [
            _StubTarget(item.key, etag, manifest, key, len(segment_body))
            for (item, etag), (manifest, _) in zip(
                sources[start:end], frames[start:end], strict=True
            )
        ]
        results.append((key, len(segment_body), targets))
        start = end
    return results, skipped


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


async def _stub(store: StoreParts, thread_id: str, targets: list[_StubTarget]) -> int:
    """Replace finished turn objects by stubs, each conditional on the version read (a key
    someone changed since is left alone). Returns how many were replaced."""

    async def one(target: _StubTarget) -> int:
        stub = Stub(
            thread_id,
            target.manifest.turn,
            target.segment_key.rsplit("/", 1)[-1],
            target.segment_bytes,
            target.manifest.events,
            target.manifest.sha256,
            target.manifest.writer,
        )
        try:
            await store.objects.put(
                target.key, STUB_BODY, if_match=target.etag, metadata=stub.to_metadata()
            )
        except StorageError as err:
            if not is_condition_failure(err):
                raise
            logger.info("compaction: %s changed since it was read; left alone", target.key)
            return 0
        return 1

    return sum(await store.reader.gather(one(target) for target in targets))


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
    ``min_turns`` turn objects (stubs, already compacted, do not count). Costs one ListObjectsV2 per 1000 objects under the prefix.

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
            if parsed is not None and not is_stub_size(obj.size):  # stubs are compacted
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
