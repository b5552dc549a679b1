"""The read path: a thread's turns, event count and events since an offset, from one LIST
and the fewest GETs, merged with the events this store holds unpersisted.

The turn key decides (docs/FORMAT.md 11.3): a turn exists when its key is listed (an open
object, a finished one, or a stub whose events are in a segment), or when a legacy
(format 2) segment holds it. A version-3 segment's turn without a key is an orphan's
(a compaction that lost a race with ``clear``) and is ignored. A segment whose whole
turn range is stubs, overlapping no other segment, holds exactly those turns: it is read
(and counted, from its name) as one block. Everything else is placed turn by turn from
the segments' indexes, so every read is in turn order. Objects are fetched and verified by
:class:`~s3_eventstore.s3.turn_objects.TurnObjects` and
:class:`~s3_eventstore.s3.segment_reader.SegmentReader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from s3_eventstore.envelope import StoredTurnEvents
from s3_eventstore.errors import ConflictingCopiesError, CorruptObjectError
from s3_eventstore.format.lifecycle import OPEN_METADATA_KEY, Stub, is_stub_size
from s3_eventstore.format.manifest import check_against_listing
from s3_eventstore.format.segment import LEGACY_SEGMENT_FORMAT
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.s3.concurrency import bounded_gather
from s3_eventstore.s3.listing import (
    ListedSegment,
    ListedTurn,
    Relist,
    ThreadListing,
    claim,
    list_segments,
    list_thread,
    relisting,
)
from s3_eventstore.s3.open_turns import streaming_error
from s3_eventstore.s3.segment_reader import SegmentReader
from s3_eventstore.s3.suspension import KeyState, unlanded
from s3_eventstore.s3.turn_objects import TurnObjects
from s3_eventstore.store import check_offset

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable, Mapping

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.format.segment import SegmentEntry, SegmentIndex
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.buffers import OpenTurn
    from s3_eventstore.s3.open_turns import OpenTurns

__all__ = ["ThreadReader"]

MIN_SEGMENT_BYTES = 9
"""A segment holds at least one zstd frame (magic, frame header, one block header: 9
bytes); anything smaller named like a segment is corrupt, whatever its name counts."""

_T = TypeVar("_T")
TurnEvents = tuple["AgentEventEnvelope", ...]


@dataclass(frozen=True, slots=True)
class _InSegment:
    """One turn inside a segment whose index is known."""

    segment: ListedSegment
    index: SegmentIndex
    entry: SegmentEntry


@dataclass(frozen=True, slots=True)
class _Object:
    """A turn object under its key (open or finished), and this store's open turn of the
    same number, if any (its unpersisted events follow an open object's)."""

    item: ListedTurn
    local: OpenTurn | None


@dataclass(frozen=True, slots=True)
class _Local:
    """A turn open here whose key holds nothing yet."""

    open_turn: OpenTurn


_Source = _Object | _InSegment | ListedSegment | _Local
"""Where a turn's (or, for a whole segment, several turns') events are."""


def _merge_pending(events: TurnEvents, local: OpenTurn | None) -> TurnEvents:
    """An open object's events followed by this store's unpersisted ones (rule L drops
    those the object already holds from an attempt whose response was lost)."""
    if local is None:
        return events
    if local.stream is not None:
        raise streaming_error(local)
    pending = tuple(local.events)
    return events + pending[unlanded(events, local.persistence, pending) :]


def _simple(segment: ListedSegment, listing: ThreadListing, stubs: Mapping[int, object]) -> bool:
    """Whether a segment holds exactly the turns of its range, every one a stub: no other
    segment overlaps it and no turn object lies in it (then each stub can only point at
    this segment, and its name's event count is the count of those turns)."""
    first, last = segment.first, segment.last
    if any(
        other is not segment and other.first <= last and first <= other.last
        for other in listing.segments
    ):
        return False
    inside = 0
    for item in listing.turns:
        if first <= item.turn <= last:
            if item.turn not in stubs:
                return False
            inside += 1
    return inside == last - first + 1


def _grouped(sources: list[_Source]) -> list[_Source | list[_InSegment]]:
    """Runs of adjacent turns of one segment become one group (one ranged GET)."""
    grouped: list[_Source | list[_InSegment]] = []
    for source in sources:
        last = grouped[-1] if grouped else None
        if (
            isinstance(source, _InSegment)
            and isinstance(last, list)
            and last[-1].segment.key == source.segment.key
            and last[-1].entry.end == source.entry.offset
        ):
            last.append(source)
        elif isinstance(source, _InSegment):
            grouped.append([source])
        else:
            grouped.append(source)
    return grouped


class ThreadReader:
    """Reads threads of one store.

    Args:
        bucket: The bucket seam.
        layout: The store's key layout.
        open_turns: The store's open turns (merged into reads).
        read_concurrency: GET/HEAD requests in flight for one read, at most.
        manifest_cache_size: Manifests remembered.
    """

    def __init__(
        self,
        bucket: Bucket,
        layout: KeyLayout,
        open_turns: OpenTurns,
        *,
        read_concurrency: int,
        manifest_cache_size: int,
    ) -> None:
        self._bucket = bucket
        self._layout = layout
        self._open_turns = open_turns
        self.read_concurrency = read_concurrency
        """GET/HEAD requests in flight for one read, at most."""
        self.turns = TurnObjects(bucket, layout, open_turns, manifest_cache_size)
        """Fetching, verifying and decoding single turn objects; the manifest cache."""
        self.segments = SegmentReader(bucket, self.turns, open_turns)
        """Fetching and verifying segments; the index cache."""

    async def gather(self, coroutines: Iterable[Awaitable[_T]]) -> list[_T]:
        """Run coroutines with at most ``read_concurrency`` in flight, results in order."""
        return await bounded_gather(coroutines, self.read_concurrency)

    async def list_thread(self, thread_id: str) -> ThreadListing:
        """One LIST of the thread's folder (see :func:`~s3_eventstore.s3.listing.list_thread`).

        Raises:
            StorageError: the LIST failed.
        """
        return await list_thread(self._bucket, self._layout, thread_id)

    def forget(self, folder: str) -> None:
        """Forget what is cached about a thread folder (a cleared thread)."""
        self.turns.forget(folder)
        self.segments.forget(folder)

    @staticmethod
    def is_open_object(metadata: Mapping[str, str]) -> bool:
        """Whether an object's metadata is an open turn object's."""
        return OPEN_METADATA_KEY in metadata

    # --- one turn key -------------------------------------------------------------------

    async def read_key(self, thread_id: str, turn: int) -> KeyState:
        """What the turn key holds now, with the turn's events (a stub's from its segment).

        Raises:
            IntegrityError: an object failed verification.
            StorageError: a request failed.
        """
        return await relisting(thread_id, lambda: self._read_key(thread_id, turn))

    async def _read_key(self, thread_id: str, turn: int) -> KeyState:
        key = self._layout.turn_key(thread_id, turn)
        found = await self.turns.fetch_key(key, thread_id, turn)
        if found is None:
            return KeyState("absent")
        if found.stub is not None:
            events = await self._stub_events(thread_id, turn, key, found.stub)
            return KeyState("stub", events, found.etag, found.writer)
        return KeyState(found.kind, found.events, found.etag, found.writer)

    async def _stub_events(self, thread_id: str, turn: int, key: str, stub: Stub) -> TurnEvents:
        """The events of a compacted turn, from the segment its stub names.

        Raises:
            Relist: the segment is gone (a clear in progress: read the key again).
            CorruptObjectError: the segment does not hold the turn the stub describes.
        """
        segment_key = self._layout.thread_folder(thread_id) + stub.segment
        found = await self.segments.index_by_name(segment_key, stub.segment_bytes, thread_id)
        if found is None:
            raise Relist(segment_key)
        etag, index = found
        entry = index.entry(turn)
        if entry is None or entry.manifest.sha256 != stub.sha256:
            raise CorruptObjectError(
                f"stub of turn {turn} says {segment_key} holds it (sha256 {stub.sha256}), "
                f"but the segment does not",
                key=key,
            )
        frames = await self.segments.fetch_frames(segment_key, etag, [entry], thread_id)
        if frames is None:
            self.segments.indexes.discard(segment_key)
            raise Relist(segment_key)
        return frames[0]

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """One turn (see ``S3EventStore.get_turn``)."""
        check_thread_id(thread_id)
        check_turn(turn)
        state = await self.read_key(thread_id, turn)
        local = self._open_turns.get(thread_id, turn)
        if state.kind == "open":
            return StoredTurnEvents(turn, _merge_pending(state.events, local), False)
        if state.kind != "absent":
            return StoredTurnEvents(turn, state.events, True)
        if local is not None:
            if local.stream is not None:
                raise streaming_error(local)
            if local.events:
                return StoredTurnEvents(turn, tuple(local.events), False)
        return await relisting(thread_id, lambda: self._legacy_turn(thread_id, turn))

    async def _legacy_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """A turn with no key exists only in a legacy segment (compacted before stubs)."""
        for segment in await list_segments(self._bucket, self._layout, thread_id):
            if not segment.covers(turn):
                continue
            index = await self.segments.index(segment, thread_id)
            entry = index.entry(turn)
            if entry is None or index.manifest.format != LEGACY_SEGMENT_FORMAT:
                continue  # a version-3 segment's turn without a key: an orphan
            frames = await self.segments.fetch_frames(segment.key, segment.etag, [entry], thread_id)
            if frames is None:
                raise Relist(segment.key)
            return StoredTurnEvents(turn, frames[0], True)
        return None

    # --- the plan of a thread -----------------------------------------------------------

    async def _plan(self, thread_id: str) -> list[tuple[int, _Source]]:
        """Where each turn of the thread is, in turn order (a simple segment is one entry,
        numbered by its first turn)."""
        listing = await self.list_thread(thread_id)
        stubs = {item.turn: item for item in listing.turns if is_stub_size(item.size)}
        objects = {item.turn: item for item in listing.turns if not is_stub_size(item.size)}
        local = self._open_turns.of_thread(thread_id)
        simple = [s for s in listing.segments if _simple(s, listing, stubs)]
        tangled = [s for s in listing.segments if s not in simple]
        indexes = await self.gather(self.segments.index(s, thread_id) for s in tangled)
        candidates: dict[int, list[_InSegment]] = {}
        for segment, index in zip(tangled, indexes, strict=True):
            legacy = index.manifest.format == LEGACY_SEGMENT_FORMAT
            for entry in index.entries:
                if entry.turn in objects or (entry.turn not in stubs and not legacy):
                    continue  # the key decides; a v3 turn without a key is an orphan's
                candidates.setdefault(entry.turn, []).append(_InSegment(segment, index, entry))
        plan: list[tuple[int, _Source]] = [(s.first, s) for s in simple]
        in_simple = {turn for s in simple for turn in stubs if s.covers(turn)}
        plan += [(turn, _Object(item, local.get(turn))) for turn, item in objects.items()]
        for turn, item in stubs.items():
            if turn not in in_simple:
                plan.append((turn, await self._choose(item, candidates.get(turn, []))))
        for turn, copies in candidates.items():
            if turn not in stubs:  # legacy: the copies must agree
                claims: dict[int, tuple[str, str]] = {}
                for copy in copies:
                    claim(claims, turn, copy.entry.manifest.sha256, copy.segment.key)
                plan.append((turn, copies[0]))
        taken = objects.keys() | stubs.keys() | candidates.keys()
        for turn, open_turn in local.items():
            if turn not in taken and (open_turn.events or open_turn.stream is not None):
                plan.append((turn, _Local(open_turn)))
        plan.sort(key=lambda planned: planned[0])
        return plan

    async def _choose(self, stub: ListedTurn, copies: list[_InSegment]) -> _InSegment:
        """The copy of a stub's turn: any, when the segments holding it agree; else the one
        its stub names (one HEAD)."""
        if not copies:
            raise Relist(stub.key)  # its segment is not listed: a clear in progress
        if len({copy.entry.manifest.sha256 for copy in copies}) == 1:
            return copies[0]
        head = await self._bucket.head(stub.key)
        if head is None:
            raise Relist(stub.key)
        named = Stub.from_metadata(head.metadata, key=stub.key)
        for copy in copies:
            if named is not None and copy.segment.key.endswith("/" + named.segment):
                return copy
        raise ConflictingCopiesError(
            f"turn {stub.turn} is held by segments that disagree, and its stub names none of them",
            key=stub.key,
            other_key=copies[0].segment.key,
        )

    # --- whole threads ------------------------------------------------------------------

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn in turn order (see ``S3EventStore.get_turns``)."""
        check_thread_id(thread_id)
        return await relisting(thread_id, lambda: self._turns(thread_id))

    async def _turns(self, thread_id: str) -> list[StoredTurnEvents]:
        plan = await self._plan(thread_id)
        jobs: list[Awaitable[list[StoredTurnEvents]]] = []
        for group in _grouped([source for _, source in plan]):
            if isinstance(group, list):
                jobs.append(self._stored_group(thread_id, group))
            else:
                jobs.append(self._stored(thread_id, group))
        fetched = await self.gather(jobs)
        return [turn for turns in fetched for turn in turns]

    async def _stored_group(
        self, thread_id: str, group: list[_InSegment]
    ) -> list[StoredTurnEvents]:
        frames = await self._group_events(thread_id, group)
        return [
            StoredTurnEvents(member.entry.turn, events, True)
            for member, events in zip(group, frames, strict=True)
        ]

    async def _stored(self, thread_id: str, source: _Source) -> list[StoredTurnEvents]:
        """The turns one plan entry holds, with their events."""
        if isinstance(source, ListedSegment):
            whole = await self.segments.fetch_segment(source, thread_id)
            if whole is None:
                raise Relist(source.key)
            index, frames = whole
            return [
                StoredTurnEvents(entry.turn, turn_events, True)
                for entry, turn_events in zip(index.entries, frames, strict=True)
            ]
        if isinstance(source, _InSegment):
            [held] = await self._group_events(thread_id, [source])
            return [StoredTurnEvents(source.entry.turn, held, True)]
        if isinstance(source, _Local):
            if source.open_turn.stream is not None:
                raise streaming_error(source.open_turn)
            return [StoredTurnEvents(source.open_turn.turn, tuple(source.open_turn.events), False)]
        item = source.item
        found = await self.turns.fetch_key(item.key, thread_id, item.turn)
        if found is None or found.kind == "stub" or found.etag != item.etag:
            raise Relist(item.key)  # changed since the LIST: finished, compacted or cleared
        if found.kind == "open":
            return [StoredTurnEvents(item.turn, _merge_pending(found.events, source.local), False)]
        return [StoredTurnEvents(item.turn, found.events, True)]

    async def event_count(self, thread_id: str) -> int:
        """Number of events (see ``S3EventStore.event_count``)."""
        check_thread_id(thread_id)
        counts = await relisting(thread_id, lambda: self._counts(thread_id))
        return sum(count for count, _ in counts)

    async def _counts(self, thread_id: str) -> list[tuple[int, _Source]]:
        """(event count, source) per plan entry, in turn order."""
        plan = await self._plan(thread_id)
        counts = await self.gather(self._count(thread_id, source) for _, source in plan)
        return list(zip(counts, [source for _, source in plan], strict=True))

    async def _count(self, thread_id: str, source: _Source) -> int:
        if isinstance(source, ListedSegment):
            if source.size < MIN_SEGMENT_BYTES:  # e.g. a zero-byte object named like one
                raise CorruptObjectError(
                    f"segment is {source.size} bytes: too small to hold any turn",
                    key=source.key,
                )
            # The name alone cannot tell a truncated or swapped segment: its verified
            # index (cached per ETag, else one ranged GET of the tail) checks manifest
            # against name, thread and listed size, as the full read does.
            await self.segments.index(source, thread_id)
            return source.events
        if isinstance(source, _InSegment):
            return source.entry.manifest.events
        if isinstance(source, _Local):
            return source.open_turn.event_count
        local = source.local
        if local is not None and local.persistence.attempts:
            # An attempt whose outcome is unknown: only the events tell what landed.
            [stored] = await self._stored(thread_id, source)
            return len(stored.events)
        found = await self.turns.object_manifest(source.item)
        if found is None:
            raise Relist(source.item.key)
        manifest, is_open = found
        if not is_open:  # what the full read checks and a HEAD can: key, size, count
            item = source.item
            check_against_listing(
                manifest, key=item.key, thread_id=thread_id, turn=item.turn, size=item.size
            )
        if is_open and local is not None:
            if local.stream is not None:
                raise streaming_error(local)
            return manifest.events + len(local.events)
        return manifest.events

    async def events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """Events from ``offset`` on (see ``S3EventStore.get_events_since``)."""
        check_thread_id(thread_id)
        check_offset(offset)
        return await relisting(thread_id, lambda: self._events_since(thread_id, offset))

    async def _events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        counts = await self._counts(thread_id)
        wanted: list[tuple[int, _Source]] = []  # (events to skip, source)
        position = 0
        for count, source in counts:
            if position + count > offset:
                wanted.append((max(0, offset - position), source))
            position += count
        if wanted and isinstance(wanted[0][1], ListedSegment) and wanted[0][0] > 0:
            # The offset falls inside a segment: fetch only the frames it needs.
            skip, segment = wanted[0][0], wanted[0][1]
            index = await self.segments.index(segment, thread_id)
            expanded: list[tuple[int, _Source]] = []
            for entry in index.entries:
                if not expanded and skip >= entry.manifest.events:
                    skip -= entry.manifest.events
                    continue
                expanded.append((skip if not expanded else 0, _InSegment(segment, index, entry)))
            wanted[:1] = expanded
        first_skip = wanted[0][0] if wanted else 0
        jobs: list[Awaitable[list[TurnEvents]]] = []
        group: list[_InSegment] = []
        for _, source in wanted:
            if isinstance(source, _InSegment):
                if group and (
                    group[-1].segment.key != source.segment.key
                    or group[-1].entry.end != source.entry.offset
                ):
                    jobs.append(self._group_events(thread_id, group))
                    group = []
                group.append(source)
                continue
            if group:
                jobs.append(self._group_events(thread_id, group))
                group = []
            jobs.append(self._events_of(thread_id, source))
        if group:
            jobs.append(self._group_events(thread_id, group))
        events: list[AgentEventEnvelope] = []
        for index_in_result, turn_events in enumerate(
            turn for job in await self.gather(jobs) for turn in job
        ):
            events.extend(turn_events[first_skip:] if index_in_result == 0 else turn_events)
        return events

    async def _events_of(self, thread_id: str, source: _Source) -> list[TurnEvents]:
        return [stored.events for stored in await self._stored(thread_id, source)]

    async def _group_events(self, thread_id: str, group: list[_InSegment]) -> list[TurnEvents]:
        """The events of adjacent turns of one segment: one ranged GET of their frames."""
        segment = group[0].segment
        frames = await self.segments.fetch_frames(
            segment.key, segment.etag, [member.entry for member in group], thread_id
        )
        if frames is None:
            raise Relist(segment.key)
        return frames
