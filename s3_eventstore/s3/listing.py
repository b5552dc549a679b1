"""A thread listing snapshot: what one LIST of a thread's folder says.

A thread folder holds turn objects and, once compacted, segments (docs/FORMAT.md
section 8). While compaction runs, or after it died between its segment PUT and its
deletes, a turn can be in both; readers take each turn once and check that the copies
agree (:func:`claim`) rather than pick one silently. An object listed a moment ago can
vanish before it is fetched (compaction deleted it after writing its segment, or a
clear): the read raises :class:`Relist`, and :func:`relisting` lists again, since the
turn's other copy must already be there.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from s3_eventstore.errors import ConflictingCopiesError, StorageError
from s3_eventstore.format.keys import SEGMENT_PREFIX

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from s3_eventstore.format.keys import KeyLayout, SegmentName
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.objects import ListedObject

__all__ = [
    "RELIST_ATTEMPTS",
    "ListedSegment",
    "ListedTurn",
    "Relist",
    "ThreadListing",
    "claim",
    "list_segments",
    "list_thread",
    "relisting",
]

logger = logging.getLogger("s3_eventstore")

RELIST_ATTEMPTS: Final = 5
"""Reads list a thread again at most this many times when listed objects keep vanishing."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ListedTurn:
    """One turn object as the LIST returned it."""

    turn: int
    """The turn number (from the key)."""
    key: str
    """The object key."""
    etag: str
    """Its ETag (validates cached manifests)."""
    size: int
    """Its length in bytes."""


@dataclass(frozen=True, slots=True)
class ListedSegment:
    """One segment as the LIST returned it; its name gives turn range and event count."""

    key: str
    """The object key."""
    etag: str
    """Its ETag (validates cached indexes; ranged GETs are conditional on it)."""
    size: int
    """Its length in bytes."""
    name: SegmentName
    """What its name says: first and last turn, events."""

    @property
    def first(self) -> int:
        """The lowest turn number it may hold."""
        return self.name.first_turn

    @property
    def last(self) -> int:
        """The highest turn number it may hold."""
        return self.name.last_turn

    @property
    def events(self) -> int:
        """The events it holds, from its name."""
        return self.name.events

    def covers(self, turn: int) -> bool:
        """True when ``turn`` lies in the segment's turn range (held or not)."""
        return self.first <= turn <= self.last


@dataclass(frozen=True, slots=True)
class ThreadListing:
    """A thread's turn objects in turn order and its segments in key order."""

    turns: list[ListedTurn]
    """Turn objects, in turn order."""
    segments: list[ListedSegment]
    """Segments, in key order."""

    def covered(self, turn: int) -> bool:
        """True when some segment's turn range includes ``turn``."""
        return any(segment.covers(turn) for segment in self.segments)

    def tangled(self, loose_turns: Iterable[int]) -> set[str]:
        """Keys of the segments whose turn range holds another object's turn or overlaps
        another segment: their index is needed to place each turn; the others count from
        their key."""
        tangled: set[str] = set()
        for turn in loose_turns:
            tangled.update(segment.key for segment in self.segments if segment.covers(turn))
        by_first = sorted(self.segments, key=lambda segment: (segment.first, segment.last))
        for before, after in itertools.pairwise(by_first):
            if after.first <= before.last:
                tangled.update((before.key, after.key))
        return tangled


class Relist(Exception):
    """An object listed a moment ago is gone (compacted or cleared): list the thread again.

    Raised inside a read and caught by :func:`relisting`; it never leaves the library.
    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
        """The key that vanished."""


def claim(claims: dict[int, tuple[str, str]], turn: int, sha256: str, key: str) -> bool:
    """Record that ``key`` holds ``turn``; False if another copy was recorded first (and
    agrees).

    Raises:
        ConflictingCopiesError: the copies disagree.
    """
    claimed = claims.get(turn)
    if claimed is None:
        claims[turn] = (sha256, key)
        return True
    if claimed[0] != sha256:
        raise ConflictingCopiesError(
            f"turn {turn} has two copies that disagree: {claimed[1]} (sha256 {claimed[0]}) "
            f"and {key} (sha256 {sha256})",
            key=claimed[1],
            other_key=key,
        )
    return False


async def relisting(thread_id: str, read: Callable[[], Awaitable[_T]]) -> _T:
    """Run a read, listing again when an object it listed vanished before its GET.

    Raises:
        StorageError: objects kept vanishing :data:`RELIST_ATTEMPTS` times.
    """
    gone = ""
    for _ in range(RELIST_ATTEMPTS):
        try:
            return await read()
        except Relist as vanished:
            gone = vanished.key
            logger.info("%s vanished while it was read (compacted or cleared)", gone)
    raise StorageError(
        f"objects of thread {thread_id!r} kept vanishing while they were read "
        f"(last: {gone}); retry",
        operation="GetObject",
        code="NoSuchKey",
    )


async def list_thread(bucket: Bucket, layout: KeyLayout, thread_id: str) -> ThreadListing:
    """LIST the thread's folder; anything that is neither a turn object nor a segment of
    the thread is skipped (and logged).

    Raises:
        InvalidThreadIdError: bad thread id.
        StorageError: the LIST failed.
    """
    folder = layout.thread_folder(thread_id)
    turns: list[ListedTurn] = []
    others: list[ListedObject] = []
    for obj in await bucket.list_all(folder):
        turn = layout.parse_turn_key(obj.key, thread_id)
        if turn is None:
            others.append(obj)
            continue
        turns.append(ListedTurn(turn, obj.key, obj.etag, obj.size))
    turns.sort(key=lambda item: item.turn)  # keys sort by turn already; do not rely on it
    return ThreadListing(turns, parse_segments(layout, others, thread_id))


async def list_segments(bucket: Bucket, layout: KeyLayout, thread_id: str) -> list[ListedSegment]:
    """LIST only the thread's segments (the ``seg-`` names), in key order.

    Raises:
        StorageError: the LIST failed.
    """
    folder = layout.thread_folder(thread_id)
    return parse_segments(layout, await bucket.list_all(folder + SEGMENT_PREFIX), thread_id)


def parse_segments(
    layout: KeyLayout, objects: Iterable[ListedObject], thread_id: str
) -> list[ListedSegment]:
    """The segments of ``thread_id`` among listed objects, in key order; others are logged."""
    segments: list[ListedSegment] = []
    for obj in objects:
        name = layout.parse_segment_key(obj.key, thread_id)
        if name is None:
            logger.warning("skipping %s: not a turn object of this store", obj.key)
            continue
        segments.append(ListedSegment(obj.key, obj.etag, obj.size, name))
    segments.sort(key=lambda segment: segment.key)
    return segments
