"""The read path: a thread's turns, event count and events since an offset, from one LIST
and the fewest GETs, merged with the turns open in this store.

Compacted turns (segments) are read transparently: a whole segment with one GET, one
turn of it with one ranged GET once its index is known; turns held twice during a
compaction are read once, their copies compared (see :mod:`s3_eventstore.s3.listing`).
Single objects are fetched and verified by :class:`~s3_eventstore.s3.turn_objects.TurnObjects`
and :class:`~s3_eventstore.s3.segment_reader.SegmentReader`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from s3_eventstore.envelope import StoredTurnEvents
from s3_eventstore.identifiers import check_thread_id, check_turn
from s3_eventstore.s3.buffers import OpenTurn
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
from s3_eventstore.s3.turn_objects import TurnObjects
from s3_eventstore.store import check_offset

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.keys import KeyLayout
    from s3_eventstore.format.segment import SegmentEntry, SegmentIndex
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.open_turns import OpenTurns

__all__ = ["ThreadReader"]

_T = TypeVar("_T")
TurnEvents = tuple["AgentEventEnvelope", ...]


@dataclass(frozen=True, slots=True)
class _InSegment:
    """One turn inside a segment whose index is known."""

    segment: ListedSegment
    index: SegmentIndex
    entry: SegmentEntry


_Source = ListedTurn | OpenTurn | _InSegment | ListedSegment
"""Where a turn's (or, for a whole segment, several turns') events are."""


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

    # --- one turn -----------------------------------------------------------------------

    async def get_turn(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        """One turn (see ``S3EventStore.get_turn``)."""
        check_thread_id(thread_id)
        check_turn(turn)
        key = self._layout.turn_key(thread_id, turn)
        folder = self._layout.thread_folder(thread_id)
        known = self.segments.indexes.find_turn(folder, turn)
        if known is not None:
            segment_key, etag, _, entry = known
            frames = await self.segments.fetch_frames(segment_key, etag, [entry], thread_id)
            if frames is not None:
                return StoredTurnEvents(turn, frames[0], True)
            self.segments.indexes.discard(segment_key)  # gone or replaced: look again
        events = await self.turns.fetch(key, thread_id, turn)
        if events is not None:
            return StoredTurnEvents(turn, events, True)
        open_turn = self._open_turns.get(thread_id, turn)
        if open_turn is not None:
            if open_turn.stream is not None:
                raise streaming_error(open_turn)
            return StoredTurnEvents(turn, tuple(open_turn.events), False)
        return await relisting(thread_id, lambda: self._turn_from_segments(thread_id, turn))

    async def _turn_from_segments(self, thread_id: str, turn: int) -> StoredTurnEvents | None:
        for segment in await list_segments(self._bucket, self._layout, thread_id):
            if not segment.covers(turn):
                continue
            index = await self.segments.index(segment, thread_id)
            entry = index.entry(turn)
            if entry is None:
                continue
            frames = await self.segments.fetch_frames(segment.key, segment.etag, [entry], thread_id)
            if frames is None:
                raise Relist(segment.key)
            return StoredTurnEvents(turn, frames[0], True)
        return None

    # --- whole threads ------------------------------------------------------------------

    async def get_turns(self, thread_id: str) -> list[StoredTurnEvents]:
        """Every turn in turn order (see ``S3EventStore.get_turns``)."""
        archived = await relisting(thread_id, lambda: self._archived_turns(thread_id))
        return self._open_turns.merge(thread_id, archived)

    async def _archived_turns(self, thread_id: str) -> dict[int, StoredTurnEvents]:
        listing = await self.list_thread(thread_id)
        segments = listing.segments
        outside = [item for item in listing.turns if not listing.covered(item.turn)]
        inside = [item for item in listing.turns if listing.covered(item.turn)]
        segment_turns: dict[str, tuple[SegmentIndex, list[TurnEvents]]] = {}
        turn_events: dict[int, TurnEvents] = {}

        async def fetch_segment(segment: ListedSegment) -> None:
            found = await self.segments.fetch_segment(segment, thread_id)
            if found is None:
                raise Relist(segment.key)
            segment_turns[segment.key] = found

        async def fetch_turn(item: ListedTurn) -> None:
            turn_events[item.turn] = await self._events_of(thread_id, item)

        await self.gather(
            [*(fetch_segment(s) for s in segments), *(fetch_turn(i) for i in outside)]
        )
        archived: dict[int, StoredTurnEvents] = {}
        claims: dict[int, tuple[str, str]] = {}
        for segment in segments:
            index, events = segment_turns[segment.key]
            for entry, entry_events in zip(index.entries, events, strict=True):
                if claim(claims, entry.turn, entry.manifest.sha256, segment.key):
                    archived[entry.turn] = StoredTurnEvents(entry.turn, entry_events, True)
        gaps = [item for item in inside if item.turn not in claims]
        await self.gather(
            [
                *(
                    self.turns.check_copy(item, *claims[item.turn])
                    for item in inside
                    if item.turn in claims
                ),
                *(fetch_turn(item) for item in gaps),
            ]
        )
        for item in [*outside, *gaps]:
            archived[item.turn] = StoredTurnEvents(item.turn, turn_events[item.turn], True)
        return archived

    async def event_count(self, thread_id: str) -> int:
        """Number of events (see ``S3EventStore.event_count``)."""
        counts = await relisting(thread_id, lambda: self._turn_counts(thread_id))
        return sum(count for _, count, _ in counts)

    async def events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        """Events from ``offset`` on (see ``S3EventStore.get_events_since``)."""
        check_offset(offset)
        return await relisting(thread_id, lambda: self._events_since(thread_id, offset))

    async def _events_since(self, thread_id: str, offset: int) -> list[AgentEventEnvelope]:
        counts = await self._turn_counts(thread_id)
        wanted: list[tuple[int, _Source]] = []
        position = 0  # wanted: (events to skip, source)
        for _, count, source in counts:
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
            jobs.append(self._source_events(thread_id, source))
        if group:
            jobs.append(self._group_events(thread_id, group))
        events: list[AgentEventEnvelope] = []
        for index_in_result, turn_events in enumerate(
            turn for job in await self.gather(jobs) for turn in job
        ):
            events.extend(turn_events[first_skip:] if index_in_result == 0 else turn_events)
        return events

    async def _group_events(self, thread_id: str, group: list[_InSegment]) -> list[TurnEvents]:
        """The events of adjacent turns of one segment: one ranged GET of their frames."""
        segment = group[0].segment
        frames = await self.segments.fetch_frames(
            segment.key, segment.etag, [member.entry for member in group], thread_id
        )
        if frames is None:
            raise Relist(segment.key)
        return frames

    async def _source_events(self, thread_id: str, source: _Source) -> list[TurnEvents]:
        if isinstance(source, ListedSegment):
            found = await self.segments.fetch_segment(source, thread_id)
            if found is None:
                raise Relist(source.key)
            return found[1]
        if isinstance(source, _InSegment):
            return await self._group_events(thread_id, [source])
        return [await self._events_of(thread_id, source)]

    async def _events_of(self, thread_id: str, source: ListedTurn | OpenTurn) -> TurnEvents:
        if isinstance(source, OpenTurn):
            if source.stream is not None:
                raise streaming_error(source)
            return tuple(source.events)
        events = await self.turns.fetch(source.key, thread_id, source.turn)
        if events is None:
            raise Relist(source.key)  # compacted or cleared between the LIST and the GET
        return events

    async def _turn_counts(self, thread_id: str) -> list[tuple[int, int, _Source]]:
        """(turn, event count, where the events are) in turn order. A segment nothing else
        interleaves with is one entry for all its turns (numbered by its first turn)."""
        listing = await self.list_thread(thread_id)
        listed, segments = listing.turns, listing.segments
        open_turns = self._open_turns.of_thread(thread_id)
        counts: dict[int, tuple[int, int, _Source]] = {}
        claims: dict[int, tuple[str, str]] = {}
        if segments:
            tangled = listing.tangled([item.turn for item in listed] + list(open_turns))
            indexes = await self.gather(
                self.segments.index(s, thread_id) for s in segments if s.key in tangled
            )
            by_key = dict(zip([s.key for s in segments if s.key in tangled], indexes, strict=True))
            for segment in segments:
                index = by_key.get(segment.key)
                if index is None:  # nothing interleaves: count it from its key
                    counts[segment.first] = (segment.first, segment.events, segment)
                    continue
                for entry in index.entries:
                    if claim(claims, entry.turn, entry.manifest.sha256, segment.key):
                        source = _InSegment(segment, index, entry)
                        counts[entry.turn] = (entry.turn, entry.manifest.events, source)
        copies = [item for item in listed if item.turn in claims]
        own = [item for item in listed if item.turn not in claims]
        manifests = await self.gather(
            [
                *(self.turns.manifest_of(item) for item in own),
                *(self.turns.check_copy(item, *claims[item.turn]) for item in copies),
            ]
        )
        for item, manifest in zip(own, manifests[: len(own)], strict=True):
            if manifest is None:
                raise Relist(item.key)
            counts[item.turn] = (item.turn, manifest.events, item)
        for turn, open_turn in open_turns.items():
            counts.setdefault(turn, (turn, open_turn.event_count, open_turn))
        return [counts[turn] for turn in sorted(counts)]
