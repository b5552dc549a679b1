"""Looking at an archive from the outside: threads, turns, payloads, stats, verification.

The :class:`~s3_eventstore.s3.store.S3EventStore` API answers questions about one thread
the way an agent asks them. An operator asks about the whole prefix: which threads
exist, how big they are, what a turn's manifest says, whether every object is intact.
These functions answer with the store's own client, layout and verification, streaming
LIST pages as they arrive so a prefix with millions of objects is never held in memory.

Missing data is ``None`` or an empty result, as in the store API; only storage failures
raise. A turn object whose manifest is unreadable is reported (``TurnInfo.problem``),
not raised, so one bad object does not hide the rest of a listing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import IntegrityError
from s3_eventstore.format.keys import SEGMENT_PREFIX
from s3_eventstore.format.lifecycle import Stub, open_manifest
from s3_eventstore.format.manifest import TurnManifest
from s3_eventstore.format.segment import SegmentManifest
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.ops.costs import CostEstimate, SizeTally, estimate_costs
from s3_eventstore.s3.listing import ListedSegment, Relist
from s3_eventstore.s3.verify import VerifyProblem, VerifyReport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.segment import SegmentIndex
    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "ArchiveStats",
    "ThreadSummary",
    "TurnInfo",
    "archive_stats",
    "iter_thread_summaries",
    "iter_threads",
    "iter_turn_events",
    "list_pages",
    "read_turn",
    "turn_infos",
    "verify_archive",
]

logger = logging.getLogger("s3_eventstore")

_SHARD_FOLDER: Final = "shard="


async def list_pages(
    store: S3EventStore, prefix: str, *, delimiter: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """ListObjectsV2 pages under ``prefix``, one at a time, as the service returns them.

    Raises:
        StorageError: a LIST failed (after the client's retries).
    """
    async for page in store.list_pages(prefix, delimiter=delimiter):
        yield page


# --- threads ---------------------------------------------------------------------------


async def iter_threads(store: S3EventStore) -> AsyncIterator[str]:
    """Every thread id under the store's prefix, shard by shard, as LIST pages arrive.

    Two levels of delimited LIST: the shard folders, then each shard's thread folders.
    That costs 1 + (shards in use) LIST calls plus one per 1000 threads of a shard, and
    never lists a turn object. Order is shard order, not thread id order.

    Raises:
        StorageError: a LIST failed.
    """
    layout = store.layout
    async for page in list_pages(store, layout.threads_root, delimiter="/"):
        for shard in page.get("CommonPrefixes", []):
            shard_folder = str(shard["Prefix"])
            if not shard_folder[len(layout.threads_root) :].startswith(_SHARD_FOLDER):
                continue
            async for thread_page in list_pages(store, shard_folder, delimiter="/"):
                for folder in thread_page.get("CommonPrefixes", []):
                    thread_id = layout.thread_of_folder(str(folder["Prefix"]))
                    if thread_id is None:
                        logger.warning("skipping %s: not a thread folder", folder["Prefix"])
                        continue
                    yield thread_id


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """One thread as a flat LIST of its folder shows it (no object is read)."""

    thread_id: str
    """The thread id (decoded)."""
    turns: int
    """Finished turns: turn objects and turns held in segments (each counted once)."""
    stored_bytes: int
    """Size of its turn objects and segments as stored (compressed)."""
    first_turn: int | None
    """Lowest turn number, ``None`` when the folder holds no turn."""
    last_turn: int | None
    """Highest turn number."""
    other_objects: int = 0
    """Objects in the folder that are neither turn objects nor segments (skipped)."""
    segments: int = 0
    """Segment objects (compacted turns)."""


@dataclass(slots=True)
class _SummaryBuilder:
    thread_id: str
    turns: set[int] = field(default_factory=set)
    stored_bytes: int = 0
    other_objects: int = 0
    segments: list[ListedSegment] = field(default_factory=list)

    async def build(self, store: S3EventStore) -> ThreadSummary:
        indexes = await store.reader.gather(
            _segment_index(store, self.thread_id, segment) for segment in self.segments
        )
        for index in indexes:
            if index is not None:
                self.turns.update(index.turns)
        return ThreadSummary(
            self.thread_id,
            len(self.turns),
            self.stored_bytes,
            min(self.turns) if self.turns else None,
            max(self.turns) if self.turns else None,
            self.other_objects,
            len(self.segments),
        )


async def _segment_index(
    store: S3EventStore, thread_id: str, segment: ListedSegment
) -> SegmentIndex | None:
    """A segment's verified index (one ranged GET, cached); ``None`` if it is gone."""
    try:
        return await store.reader.segments.index(segment, thread_id)
    except Relist:
        return None  # deleted since the LIST (a clear, or compaction replacing it)


def _listed_segment(
    store: S3EventStore, thread_id: str, obj: dict[str, Any]
) -> ListedSegment | None:
    key = str(obj["Key"])
    name = store.layout.parse_segment_key(key, thread_id)
    if name is None:
        return None
    return ListedSegment(key, str(obj.get("ETag", "")), int(obj.get("Size", 0)), name)


async def iter_thread_summaries(store: S3EventStore) -> AsyncIterator[ThreadSummary]:
    """Every thread with its turn count and size, from one flat paginated LIST.

    Costs one LIST per 1000 objects under the prefix, plus one ranged GetObject of each
    segment's index (a compacted thread's turns are inside its segments). A thread's keys
    are contiguous in a listing (they share its folder), so each summary is yielded as
    soon as the listing moves past its folder.

    Raises:
        StorageError: a LIST failed.
    """
    layout = store.layout
    current: _SummaryBuilder | None = None
    current_folder = ""
    async for page in list_pages(store, layout.threads_root):
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            folder = key.rsplit("/", 1)[0] + "/"
            if current is None or folder != current_folder:
                thread_id = layout.thread_of_folder(folder)
                if thread_id is None:
                    logger.warning("skipping %s: not in a thread folder", key)
                    continue
                if current is not None:
                    yield await current.build(store)
                current, current_folder = _SummaryBuilder(thread_id), folder
            parsed = layout.parse_key(key)
            if parsed is not None:
                current.turns.add(parsed.turn)
            else:
                segment = _listed_segment(store, current.thread_id, obj)
                if segment is None:
                    current.other_objects += 1
                    continue
                current.segments.append(segment)
            current.stored_bytes += int(obj.get("Size", 0))
    if current is not None:
        yield await current.build(store)


# --- turns -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnInfo:
    """One turn object: what the LIST and its manifest say, without its body."""

    thread_id: str
    """The thread id."""
    turn: int
    """The turn number."""
    key: str
    """The object key."""
    size: int
    """Object size as listed."""
    manifest: TurnManifest | None
    """The manifest (an open turn object's, too); ``None`` for a stub (a compacted turn: its
    events are in its segment) and when it is missing or malformed (see :attr:`problem`)."""
    problem: str | None = None
    """Why the manifest could not be read, else ``None``."""
    segment: str | None = None
    """The segment holding the turn when it is compacted (``key`` is then the segment's
    key and ``size`` the length of the turn's frame in it), else ``None``."""

    open: bool = False
    """True for an open turn object (a suspended turn: docs/FORMAT.md section 11)."""

    @property
    def finished(self) -> bool:
        """False for a persisted open turn; open turns not persisted are only in a
        writer's memory and not visible in the bucket."""
        return not self.open

    @property
    def ratio(self) -> float | None:
        """Raw payload bytes per stored byte (``None`` without a manifest or for 0 bytes)."""
        if self.manifest is None or self.manifest.stored_bytes == 0:
            return None
        return self.manifest.raw_bytes / self.manifest.stored_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (manifest fields flattened)."""
        manifest = self.manifest
        return {
            "thread_id": self.thread_id,
            "turn": self.turn,
            "key": self.key,
            "finished": self.finished,
            "events": manifest.events if manifest else None,
            "raw_bytes": manifest.raw_bytes if manifest else None,
            "stored_bytes": manifest.stored_bytes if manifest else self.size,
            "ratio": self.ratio,
            "first_timestamp": manifest.first_timestamp if manifest else None,
            "last_timestamp": manifest.last_timestamp if manifest else None,
            "finished_at": manifest.finished_at if manifest else None,
            "compacted": self.segment is not None,
            "problem": self.problem,
        }


async def turn_infos(store: S3EventStore, thread_id: str) -> list[TurnInfo]:
    """Every finished turn of a thread with its manifest, in turn order; ``[]`` if none.

    A turn object costs one HeadObject (a streamed turn, whose manifest is in its body's
    trailer, one ranged GetObject of 4 KiB more); the turns of a segment (a compacted
    thread) come from its index, one ranged GetObject per segment. Plus one LIST per
    1000 objects. No event is downloaded. A turn both in a segment and still as its own
    object (an interrupted compaction) is listed once, as its own object.

    Raises:
        InvalidThreadIdError: bad thread id.
        IntegrityError: a segment's index failed verification.
        StorageError: a request failed.
    """
    listing = await store.reader.list_thread(check_thread_id(thread_id))
    infos = [
        info
        for info in await store.reader.gather(
            _turn_info(store, thread_id, item.turn, item.key, item.size) for item in listing.turns
        )
        if info is not None
    ]
    # A stub (manifest None, no problem, not open) stands for a compacted turn: the row
    # comes from its segment's index below, with the manifest and ``compacted`` set.
    stubs = {
        info.turn: info
        for info in infos
        if info.manifest is None and info.problem is None and not info.open
    }
    infos = [info for info in infos if info.turn not in stubs]
    loose = {info.turn for info in infos}
    indexes = await store.reader.gather(
        _segment_index(store, thread_id, segment) for segment in listing.segments
    )
    for segment, index in zip(listing.segments, indexes, strict=True):
        if index is None:
            continue
        for entry in index.entries:
            if entry.turn not in loose:
                loose.add(entry.turn)
                infos.append(
                    TurnInfo(
                        thread_id,
                        entry.turn,
                        segment.key,
                        entry.length,
                        entry.manifest,
                        segment=segment.key,
                    )
                )
    # A stub whose segment is not listed (a compaction racing a clear): keep its row.
    infos.extend(info for turn, info in stubs.items() if turn not in loose)
    infos.sort(key=lambda info: info.turn)
    return infos


async def _turn_info(
    store: S3EventStore, thread_id: str, turn: int, key: str, size: int
) -> TurnInfo | None:
    try:
        manifest = await _manifest(store, key)
    except IntegrityError as err:
        # Not a finished turn object: a stub (compacted; its events are in its segment)
        # or an open turn object (docs/FORMAT.md section 11), else a real problem.
        head = await store.objects.head(key)
        if head is not None and Stub.from_metadata(head.metadata, key=key) is not None:
            return TurnInfo(thread_id, turn, key, size, None)
        opened = None if head is None else open_manifest(head.metadata, key=key)
        if opened is not None:
            return TurnInfo(thread_id, turn, key, size, opened, open=True)
        return TurnInfo(thread_id, turn, key, size, None, str(err))
    if manifest is None:
        return None  # deleted since the LIST
    return TurnInfo(thread_id, turn, key, size, manifest)


async def _manifest(store: S3EventStore, key: str) -> TurnManifest | None:
    """The manifest of one object: the store's HEAD (plus a ranged GET of the trailer when
    streamed), cached by key and ETag like every manifest the store reads."""
    found = await store.reader.turns.head_manifest(key, strict=True)
    return None if found is None else found[1]


# --- payloads --------------------------------------------------------------------------


async def read_turn(
    store: S3EventStore, thread_id: str, turn: int
) -> list[AgentEventEnvelope] | None:
    """Download one turn object and verify it fully; ``None`` if it does not exist.

    Each envelope's ``to_json()`` is its line exactly as stored, so joining them with
    ``\\n`` gives the object's payload byte for byte (its SHA-256 was just checked).

    Raises:
        InvalidThreadIdError: bad thread id.
        InvalidTurnError: bad turn number.
        IntegrityError: the object failed verification.
        StorageError: the GET failed.
    """
    check_thread_id(thread_id)
    check_turn(turn)
    # The store's own read: a turn object, or its frame in a compaction segment.
    stored = await store.get_turn(thread_id, turn)
    if stored is None or not stored.finished:
        return None
    return list(stored.events)


async def iter_turn_events(
    store: S3EventStore, thread_id: str, turns: Iterable[int] | None = None
) -> AsyncIterator[tuple[int, list[AgentEventEnvelope]]]:
    """``(turn, events)`` for each turn object of a thread, in turn order.

    ``turns`` restricts the output to those turns (a missing one is skipped). Up to
    ``store.read_concurrency`` objects are downloaded ahead of the consumer, no more, so
    memory stays bounded however long the thread is.

    Raises:
        InvalidThreadIdError: bad thread id.
        IntegrityError: an object failed verification.
        StorageError: a request failed.
    """
    folder = store.layout.thread_folder(check_thread_id(thread_id))
    wanted = None if turns is None else set(turns)
    numbers: list[int] = []
    compacted = False
    async for page in list_pages(store, folder):
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            compacted = compacted or key[len(folder) :].startswith(SEGMENT_PREFIX)
            turn = store.layout.parse_turn_key(key, thread_id)
            if turn is not None and (wanted is None or turn in wanted):
                numbers.append(turn)
    if compacted:
        # Segments hold many turns each: let the store resolve and deduplicate them.
        for stored in await store.get_turns(thread_id):
            if stored.finished and (wanted is None or stored.turn in wanted):
                yield stored.turn, list(stored.events)
        return
    pending: list[tuple[int, asyncio.Task[list[AgentEventEnvelope] | None]]] = []
    try:
        for turn in numbers:
            pending.append((turn, asyncio.ensure_future(read_turn(store, thread_id, turn))))
            while len(pending) >= store.read_concurrency or (pending and turn == numbers[-1]):
                number, task = pending.pop(0)
                events = await task
                if events is not None:
                    yield number, events
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


# --- stats -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """Totals over every turn object under a prefix, and what keeping them costs."""

    threads: int
    """Threads with at least one turn object or segment."""
    objects: int
    """Stored objects: turn objects and segments (what S3 bills per object)."""
    stored_bytes: int
    """Their size as stored (compressed), from the LIST."""
    events: int | None
    """Events, from the manifests (``None`` when manifests were not read)."""
    raw_bytes: int | None
    """Uncompressed JSON-lines bytes, from the manifests."""
    other_objects: int
    """Objects under ``threads/`` that are not turn objects."""
    unreadable_manifests: int
    """Turn objects or segments whose manifest could not be read (stubs of compacted
    turns and open turn objects are not counted here)."""
    costs: CostEstimate
    """Storage and request cost estimate for the objects."""
    segments: int = 0
    """Of :attr:`objects`, the segments (compacted turns)."""
    turns: int | None = None
    """Finished turns, from the manifests (a segment's says how many it holds); ``None``
    when manifests were not read. A turn left both in a segment and as its own object by
    an interrupted compaction counts twice until ``compact`` runs again."""
    open_turns: int = 0
    """Persisted open (suspended, unfinished) turn objects, from the manifests; their
    events and raw bytes are included in :attr:`events` and :attr:`raw_bytes`."""

    @property
    def ratio(self) -> float | None:
        """Raw bytes per stored byte."""
        if self.raw_bytes is None or self.stored_bytes == 0:
            return None
        return self.raw_bytes / self.stored_bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "threads": self.threads,
            "objects": self.objects,
            "segments": self.segments,
            "turns": self.turns,
            "open_turns": self.open_turns,
            "events": self.events,
            "raw_bytes": self.raw_bytes,
            "stored_bytes": self.stored_bytes,
            "ratio": self.ratio,
            "other_objects": self.other_objects,
            "unreadable_manifests": self.unreadable_manifests,
            "costs": self.costs.to_dict(),
        }


async def archive_stats(
    store: S3EventStore,
    *,
    read_manifests: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ArchiveStats:
    """Count threads, objects, events and bytes under the prefix, and price them.

    Costs one LIST per 1000 objects, plus one HeadObject per turn object and per segment
    when ``read_manifests`` (events and raw bytes are only in the manifests). ``progress``
    is called with the number of objects done after each LIST page. Segments (compacted
    turns) are objects like any other: counted, sized and priced.

    Raises:
        StorageError: a request failed.
    """
    layout = store.layout
    tally = SizeTally()
    threads: set[str] = set()
    events = raw = other = unreadable = segments = turns = open_turns = 0
    async for page in list_pages(store, layout.threads_root):
        keys: list[tuple[str, bool]] = []
        for obj in page.get("Contents", []):
            key = str(obj["Key"])
            parsed = layout.parse_key(key)
            if parsed is not None:
                threads.add(parsed.thread_id)
                keys.append((key, False))
            else:
                thread_id = layout.thread_of_folder(key.rsplit("/", 1)[0] + "/")
                if thread_id is None or layout.parse_segment_key(key, thread_id) is None:
                    other += 1
                    continue
                threads.add(thread_id)
                segments += 1
                keys.append((key, True))
            tally.add(int(obj.get("Size", 0)))
        if read_manifests:
            found_all = await store.reader.gather(
                _safe_segment_manifest(store, key) if is_segment else _safe_manifest(store, key)
                for key, is_segment in keys
            )
            for found in found_all:
                if isinstance(found, _OpenTurn):
                    open_turns += 1
                    events += found.manifest.events
                    raw += found.manifest.raw_bytes
                elif isinstance(found, TurnManifest):
                    turns += 1
                    events += found.events
                    raw += found.raw_bytes
                elif isinstance(found, SegmentManifest):
                    turns += found.turns
                    events += found.events
                    raw += found.raw_bytes
                elif found is not None:
                    unreadable += 1
        if progress is not None:
            progress(len(keys))
    return ArchiveStats(
        threads=len(threads),
        objects=tally.objects,
        stored_bytes=tally.bytes,
        events=events if read_manifests else None,
        raw_bytes=raw if read_manifests else None,
        other_objects=other,
        unreadable_manifests=unreadable,
        costs=estimate_costs(tally),
        segments=segments,
        turns=turns if read_manifests else None,
        open_turns=open_turns,
    )


async def _safe_segment_manifest(
    store: S3EventStore, key: str
) -> SegmentManifest | IntegrityError | None:
    """A segment's manifest from one HEAD; ``None`` if it is gone."""
    head = await store.objects.head(key)
    if head is None:
        return None
    try:
        return SegmentManifest.from_metadata(head.metadata, key=key)
    except IntegrityError as err:
        return err


@dataclass(frozen=True, slots=True)
class _OpenTurn:
    """A persisted open turn object's manifest (docs/FORMAT.md section 11)."""

    manifest: TurnManifest


async def _safe_manifest(
    store: S3EventStore, key: str
) -> TurnManifest | _OpenTurn | IntegrityError | None:
    """A turn object's manifest; ``None`` for a stub (its turn is counted by its segment)
    or an object gone since the LIST; the error when the manifest is malformed."""
    try:
        return await _manifest(store, key)
    except IntegrityError as err:
        # Not a finished turn object: a stub (compacted) or an open turn object, like
        # _turn_info tells them apart, else a real problem.
        try:
            head = await store.objects.head(key)
            if head is None or Stub.from_metadata(head.metadata, key=key) is not None:
                return None
            opened = open_manifest(head.metadata, key=key)
        except IntegrityError:
            return err
        return err if opened is None else _OpenTurn(opened)


# --- verification ----------------------------------------------------------------------


async def verify_archive(
    store: S3EventStore,
    thread_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[str, VerifyReport], None] | None = None,
    concurrency: int = 4,
) -> VerifyReport:
    """Verify the given threads, or every thread under the prefix, one report for all.

    Runs :meth:`S3EventStore.verify` per thread, ``concurrency`` threads at a time (each
    with the store's own read concurrency), so ``progress`` can be told after each thread.
    Objects outside any thread folder are not judged.

    Raises:
        InvalidThreadIdError: a bad thread id.
        StorageError: a LIST or GET failed.
    """
    semaphore = asyncio.Semaphore(concurrency)
    reports: list[VerifyReport] = []

    async def one(thread_id: str) -> None:
        async with semaphore:
            report = await store.verify(thread_id)
        reports.append(report)
        if progress is not None:
            progress(thread_id, report)

    tasks: list[asyncio.Task[None]] = []
    try:
        if thread_ids is None:
            tasks.extend([asyncio.ensure_future(one(t)) async for t in iter_threads(store)])
        else:
            tasks.extend(asyncio.ensure_future(one(check_thread_id(t))) for t in thread_ids)
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    problems: list[VerifyProblem] = []
    for report in reports:
        problems.extend(report.problems)
    return VerifyReport(
        scope=store.layout.threads_root,
        objects_checked=sum(r.objects_checked for r in reports),
        ok=sum(r.ok for r in reports),
        events=sum(r.events for r in reports),
        bytes_read=sum(r.bytes_read for r in reports),
        problems=tuple(sorted(problems, key=lambda problem: problem.key)),
        foreign=tuple(sorted(key for r in reports for key in r.foreign)),
        vanished=tuple(sorted(key for r in reports for key in r.vanished)),
        segments=sum(r.segments for r in reports),
        orphans=tuple(sorted(key for r in reports for key in r.orphans)),
    )
