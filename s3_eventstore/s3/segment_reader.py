"""Reading segments: a whole segment with one GET, one turn (or a run of adjacent turns)
with one ranged GET once the segment's index is known; the index cache.

Segments are immutable, so an index read once stays true for as long as the object with
that ETag exists; every ranged GET is conditional on the listed ETag (``If-Match``), so
a segment replaced or deleted since reads as gone (``None``, or
:class:`~s3_eventstore.s3.listing.Relist`) rather than as other bytes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from s3_eventstore.errors import CorruptObjectError, IntegrityError
from s3_eventstore.format.keys import parse_segment_name
from s3_eventstore.format.segment import SegmentIndex, SegmentManifest, frame_manifest
from s3_eventstore.format.turn import TurnCodec
from s3_eventstore.s3.cache import SegmentIndexCache
from s3_eventstore.s3.config import ENCODE_IN_THREAD_BYTES
from s3_eventstore.s3.listing import Relist

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.segment import SegmentEntry
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.listing import ListedSegment
    from s3_eventstore.s3.open_turns import OpenTurns
    from s3_eventstore.s3.turn_objects import TurnObjects

__all__ = ["INDEX_TAIL_BYTES", "SegmentReader"]

INDEX_TAIL_BYTES: Final = 256 * 1024
"""A segment's index is read with one ranged GET of this many bytes from its end (the
response's metadata says where the index starts; a larger index needs a second GET)."""

TurnEvents = tuple["AgentEventEnvelope", ...]


class SegmentReader:
    """Fetches and verifies segments of one store, and caches their indexes.

    Args:
        bucket: The bucket seam.
        turns: Turn-object reads (for the dictionaries frames name).
        open_turns: Told about every turn an index shows finished.
    """

    def __init__(self, bucket: Bucket, turns: TurnObjects, open_turns: OpenTurns) -> None:
        self._bucket = bucket
        self._turns = turns
        self._open_turns = open_turns
        self.indexes = SegmentIndexCache()
        """Segment indexes by key, valid for one ETag."""

    async def fetch_segment(
        self, segment: ListedSegment, thread_id: str
    ) -> tuple[SegmentIndex, list[TurnEvents]] | None:
        """GET a whole segment, verify its index and every turn; ``None`` if it is gone.

        Raises:
            IntegrityError: the segment failed verification.
            StorageError: the GET failed.
        """
        found = await self._bucket.get(segment.key)
        if found is None:
            return None
        body = found.body
        manifest = SegmentManifest.from_metadata(found.metadata, key=segment.key)
        manifest.check_name(segment.name, thread_id, key=segment.key)
        if len(body) != manifest.stored_bytes:
            raise CorruptObjectError(
                f"segment is {len(body)} bytes, manifest says {manifest.stored_bytes}",
                key=segment.key,
            )
        index = SegmentIndex.parse(manifest, body[manifest.index_offset :], key=segment.key)
        self.learn_index(segment.key, found.etag, index)
        events = await self._decode_frames(segment.key, body, 0, index.entries, thread_id)
        return index, events

    async def index(self, segment: ListedSegment, thread_id: str) -> SegmentIndex:
        """A segment's verified index: cached, or one ranged GET of the segment's tail (two
        when the index is larger than the tail).

        Raises:
            Relist: the segment is gone.
            IntegrityError: the index failed verification.
            StorageError: a GET failed.
        """
        cached = self.indexes.get(segment.key, segment.etag)
        if cached is not None:
            return cached
        start = max(0, segment.size - INDEX_TAIL_BYTES)
        found = await self._ranged_get(segment.key, segment.etag, start, segment.size)
        if found is None:
            raise Relist(segment.key)
        tail, metadata = found
        manifest = SegmentManifest.from_metadata(metadata, key=segment.key)
        manifest.check_name(segment.name, thread_id, key=segment.key)
        if manifest.stored_bytes != segment.size:
            raise CorruptObjectError(
                f"segment is {segment.size} bytes, manifest says {manifest.stored_bytes}",
                key=segment.key,
            )
        if manifest.index_offset >= start:
            frame = tail[manifest.index_offset - start :]
        else:
            found = await self._ranged_get(
                segment.key, segment.etag, manifest.index_offset, segment.size
            )
            if found is None:
                raise Relist(segment.key)
            frame = found[0]
        index = SegmentIndex.parse(manifest, frame, key=segment.key)
        self.learn_index(segment.key, segment.etag, index)
        return index

    async def index_by_name(
        self, key: str, size: int, thread_id: str
    ) -> tuple[str, SegmentIndex] | None:
        """A segment's ETag and verified index, when only its key and size are known (a
        stub names them): cached, or one ranged GET of its tail (two for a large index);
        ``None`` when it is gone.

        Raises:
            IntegrityError: the index failed verification, or the key is not a segment's.
            StorageError: a GET failed.
        """
        cached = self.indexes.get_any(key)
        if cached is not None:
            return cached
        start = max(0, size - INDEX_TAIL_BYTES)
        found = await self._bucket.get(key, byte_range=(start, size))
        if found is None:
            return None
        manifest = SegmentManifest.from_metadata(found.metadata, key=key)
        name = parse_segment_name(key.rsplit("/", 1)[-1])
        if name is None:
            raise CorruptObjectError("a stub names an object that is not a segment", key=key)
        manifest.check_name(name, thread_id, key=key)
        if manifest.stored_bytes != size or len(found.body) != size - start:
            raise CorruptObjectError(
                f"segment is not the {size} bytes its stub says (manifest: "
                f"{manifest.stored_bytes})",
                key=key,
            )
        if manifest.index_offset >= start:
            frame = found.body[manifest.index_offset - start :]
        else:
            rest = await self._ranged_get(key, found.etag, manifest.index_offset, size)
            if rest is None:
                return None
            frame = rest[0]
        index = SegmentIndex.parse(manifest, frame, key=key)
        self.learn_index(key, found.etag, index)
        return found.etag, index

    def learn_index(self, key: str, etag: str, index: SegmentIndex) -> None:
        """Cache an index, and remember its turns as finished: ``append``/``finish_turn`` of
        a compacted turn is then refused without a request."""
        self.indexes.put(key, etag, index)
        for entry in index.entries:
            self._open_turns.remember_finished(index.manifest.thread_id, entry.turn)

    async def fetch_frames(
        self, key: str, etag: str, entries: Sequence[SegmentEntry], thread_id: str
    ) -> list[TurnEvents] | None:
        """One ranged GET of adjacent turns' frames, verified; ``None`` if the segment with
        this ETag is gone.

        Raises:
            IntegrityError: a frame failed verification.
            StorageError: the GET failed.
        """
        start, end = entries[0].offset, entries[-1].end
        found = await self._ranged_get(key, etag, start, end)
        if found is None:
            return None
        return await self._decode_frames(key, found[0], start, entries, thread_id)

    async def _ranged_get(
        self, key: str, etag: str, start: int, end: int
    ) -> tuple[bytes, dict[str, str]] | None:
        """Bytes ``start..end-1`` of the object version with ``etag`` and its metadata;
        ``None`` when it is gone or another version replaced it."""
        found = await self._bucket.get(key, byte_range=(start, end), if_match=etag)
        if found is None:
            return None
        if len(found.body) != end - start:
            raise CorruptObjectError(
                f"ranged GET of bytes {start}..{end - 1} returned {len(found.body)} bytes",
                key=key,
            )
        return found.body, found.metadata

    async def _decode_frames(
        self,
        key: str,
        data: bytes,
        base: int,
        entries: Sequence[SegmentEntry],
        thread_id: str,
    ) -> list[TurnEvents]:
        """Verify and decode turn frames cut from ``data`` (which starts at offset ``base``)."""
        dictionaries = {
            entry.manifest.dictionary: await self._turns.dictionary(entry.manifest.dictionary)
            for entry in entries
            if entry.manifest.dictionary is not None
        }

        def decode_all() -> list[TurnEvents]:
            decoded = []
            for entry in entries:
                frame = data[entry.offset - base : entry.end - base]
                try:
                    events = TurnCodec.decode(
                        frame,
                        frame_manifest(entry),
                        key=key,
                        thread_id=thread_id,
                        turn=entry.turn,
                        dictionary=dictionaries.get(entry.manifest.dictionary or ""),
                    )
                except IntegrityError as err:
                    message = str(err).removeprefix(f"{key}: ")
                    raise type(err)(f"turn {entry.turn}: {message}", key=key) from None
                decoded.append(tuple(events))
            return decoded

        if sum(entry.manifest.raw_bytes for entry in entries) < ENCODE_IN_THREAD_BYTES:
            return decode_all()
        return await asyncio.to_thread(decode_all)

    def forget(self, folder: str) -> None:
        """Forget the indexes under a thread folder (a cleared thread)."""
        self.indexes.discard_prefix(folder)
