"""Segment objects: many finished turns of one thread in one immutable object (format 2).

One object per turn is right while a thread is written, wrong for years of retention:
S3's colder classes bill every object at 128 KiB or add 40 KiB to it, transitions are
charged per object, and reading a 1000-turn thread costs 1000 GETs. Compaction
(:mod:`s3_eventstore.s3.compaction`) merges a thread's turn objects into segments.

A segment's body is the turns' zstd frames exactly as they were stored (no
recompression; a streamed turn contributes its data frame, not its trailer), in turn
order, followed by the **index**: one zstd skippable frame (magic ``0x184D2A5D``) whose
payload is a zstd-compressed JSON object listing every turn's byte offset, length and
full original manifest. Plain decoders skip the index, so ``zstd -dc`` of a segment
prints every turn's JSON lines in turn order. The segment's metadata
(:class:`SegmentManifest` under ``s3es-manifest``, ``kind: "segment"``) says where the
index is and what its SHA-256 is, so a reader can fetch the index with one ranged GET
and then any one turn with another. This module is pure: encoding, parsing and
verification, no I/O. ``docs/FORMAT.md`` section 8 is the spec.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import zstandard

from s3_eventstore.errors import CorruptObjectError, IntegrityError, UnsupportedFormatError
from s3_eventstore.format.keys import MAX_SEGMENT_EVENTS, SegmentName
from s3_eventstore.format.manifest import (
    CODEC,
    MANIFEST_METADATA_KEY,
    METADATA_LIMIT_BYTES,
    TurnManifest,
    load_json_object,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_MAX_SEGMENT_BYTES",
    "INDEX_MAGIC",
    "LEGACY_SEGMENT_FORMAT",
    "SEGMENT_FORMAT",
    "SEGMENT_FORMATS",
    "SegmentEntry",
    "SegmentIndex",
    "SegmentManifest",
    "build_segment",
    "frame_manifest",
]

SEGMENT_FORMAT: Final = 3
"""Format version of the segments this library writes: a turn they hold exists only while
its turn key holds a stub (docs/FORMAT.md section 11)."""
LEGACY_SEGMENT_FORMAT: Final = 2
"""Segments written before stubs: the turns they hold exist without a key."""
SEGMENT_FORMATS: Final = frozenset({LEGACY_SEGMENT_FORMAT, SEGMENT_FORMAT})
SEGMENT_KIND: Final = "segment"
INDEX_MAGIC: Final = 0x184D2A5D
"""Skippable-frame magic of the index (the streamed-turn trailer uses ``0x184D2A5E``)."""
INDEX_HEADER_BYTES: Final = 8
DEFAULT_MAX_SEGMENT_BYTES: Final = 16 << 20
"""Compressed bytes one segment may hold: large enough to make per-object fees vanish,
small enough that rewriting or downloading one is cheap."""
_INDEX_LIMIT_BYTES: Final = 256 << 20
"""A decompressed index larger than this is corruption (a bomb), not a segment."""


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One turn inside a segment."""

    offset: int
    """Byte offset of the turn's frame(s) in the segment body."""
    length: int
    """Length of the turn's frame(s): its stored body, minus the trailer of a streamed turn."""
    manifest: TurnManifest
    """The turn object's manifest, unchanged (``stored_bytes`` is the original object's)."""

    @property
    def turn(self) -> int:
        """The turn number."""
        return self.manifest.turn

    @property
    def end(self) -> int:
        """One past the frame's last byte."""
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class SegmentManifest:
    """A segment's metadata (``s3es-manifest``): enough to find and check its index."""

    format: int
    """``3``, or ``2`` for a legacy segment (written before stubs)."""
    kind: str
    """``"segment"``: tells a segment manifest from a turn manifest."""
    codec: str
    """``"zstd"``."""
    thread_id: str
    """The thread id exactly."""
    first_turn: int
    """Lowest turn number held."""
    last_turn: int
    """Highest turn number held."""
    turns: int
    """Number of turns held (turn numbers may have gaps)."""
    events: int
    """Total events of the turns."""
    raw_bytes: int
    """Total JSON-lines payload of the turns."""
    stored_bytes: int
    """Length of the segment body, index included."""
    index_offset: int
    """Byte offset of the index frame (= total length of the turn frames)."""
    index_length: int
    """Length of the index frame, its 8-byte header included."""
    index_sha256: str
    """Lowercase hex SHA-256 of the index frame (header included)."""
    dictionaries: tuple[str, ...] = ()
    """Ids of the zstd dictionaries the turns were compressed with, sorted (usually none)."""

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata of the segment.

        Raises:
            ValueError: it exceeds S3's 2 KB metadata limit (a very long thread id).
        """
        data = asdict(self)
        data["dictionaries"] = list(self.dictionaries)
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
        if len(MANIFEST_METADATA_KEY) + len(text) > METADATA_LIMIT_BYTES:
            raise ValueError(
                f"the segment manifest needs {len(text)} bytes of metadata, over S3's "
                f"{METADATA_LIMIT_BYTES}; the thread id is too long to compact"
            )
        return {MANIFEST_METADATA_KEY: text}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, key: str) -> SegmentManifest:
        """Parse a segment's metadata.

        Raises:
            CorruptObjectError: no manifest, a malformed one, or not a segment's.
            UnsupportedFormatError: a format version or codec this library cannot read.
        """
        text = metadata.get(MANIFEST_METADATA_KEY)
        if text is None:
            raise CorruptObjectError("segment has no s3es-manifest metadata", key=key)
        data = load_json_object(text, key=key, what="segment manifest")
        if data.get("format") not in SEGMENT_FORMATS or type(data.get("format")) is not int:
            raise UnsupportedFormatError(
                f"segment format {data.get('format')!r} is not supported (this library "
                f"reads segment formats {sorted(SEGMENT_FORMATS)})",
                key=key,
            )
        if data.get("kind") != SEGMENT_KIND or data.get("codec") != CODEC:
            raise CorruptObjectError("manifest is not a zstd segment's", key=key)
        dictionaries = data.get("dictionaries", [])
        if not isinstance(dictionaries, list) or not all(isinstance(d, str) for d in dictionaries):
            raise CorruptObjectError("segment dictionaries are not a list of ids", key=key)
        data["dictionaries"] = tuple(dictionaries)
        try:
            manifest = cls(**data)
        except TypeError as err:
            raise CorruptObjectError(f"segment manifest fields are wrong: {err}", key=key) from None
        ints = (
            manifest.first_turn,
            manifest.last_turn,
            manifest.turns,
            manifest.events,
            manifest.raw_bytes,
            manifest.stored_bytes,
            manifest.index_offset,
            manifest.index_length,
        )
        if (
            any(type(value) is not int or value < 0 for value in ints)
            or not isinstance(manifest.thread_id, str)
            or not isinstance(manifest.index_sha256, str)
            or manifest.index_offset + manifest.index_length != manifest.stored_bytes
            or manifest.index_length < INDEX_HEADER_BYTES
        ):
            raise CorruptObjectError("segment manifest field has the wrong value", key=key)
        return manifest

    def check_name(self, name: SegmentName, thread_id: str, *, key: str) -> None:
        """Check the manifest against the key it was read from.

        Raises:
            CorruptObjectError: thread, turn range or event count disagree with the key.
        """
        if (self.thread_id, self.first_turn, self.last_turn, self.events) != (
            thread_id,
            name.first_turn,
            name.last_turn,
            name.events,
        ):
            raise CorruptObjectError(
                f"segment manifest (thread {self.thread_id!r}, turns {self.first_turn}.."
                f"{self.last_turn}, {self.events} events) disagrees with its key",
                key=key,
            )


@dataclass(frozen=True, slots=True)
class SegmentIndex:
    """A segment's manifest and parsed index: where each of its turns is."""

    manifest: SegmentManifest
    entries: tuple[SegmentEntry, ...]
    """In turn order; frames are contiguous from offset 0 to ``manifest.index_offset``."""

    def entry(self, turn: int) -> SegmentEntry | None:
        """The entry of ``turn``, or ``None`` if the segment does not hold it."""
        low, high = 0, len(self.entries)
        while low < high:
            middle = (low + high) // 2
            if self.entries[middle].turn < turn:
                low = middle + 1
            else:
                high = middle
        if low < len(self.entries) and self.entries[low].turn == turn:
            return self.entries[low]
        return None

    @property
    def turns(self) -> tuple[int, ...]:
        """The turn numbers held, ascending."""
        return tuple(entry.turn for entry in self.entries)

    @classmethod
    def parse(cls, manifest: SegmentManifest, index_frame: bytes, *, key: str) -> SegmentIndex:
        """Parse and verify an index frame against the segment manifest.

        Checks the frame's SHA-256 and header, then that the entries are in strictly
        increasing turn order, tile the body from 0 to ``index_offset`` with no gap or
        overlap, and add up to the manifest's counts.

        Raises:
            CorruptObjectError: any check fails.
            UnsupportedFormatError: an entry's manifest is in a format this library cannot read.
        """
        if len(index_frame) != manifest.index_length:
            raise CorruptObjectError(
                f"index is {len(index_frame)} bytes, manifest says {manifest.index_length}",
                key=key,
            )
        if hashlib.sha256(index_frame).hexdigest() != manifest.index_sha256:
            raise CorruptObjectError("index SHA-256 does not match the segment manifest", key=key)
        magic, size = struct.unpack_from("<II", index_frame)
        if magic != INDEX_MAGIC or size != len(index_frame) - INDEX_HEADER_BYTES:
            raise CorruptObjectError("segment does not end with its index frame", key=key)
        try:
            text = zstandard.ZstdDecompressor().decompress(
                index_frame[INDEX_HEADER_BYTES:], max_output_size=_INDEX_LIMIT_BYTES
            )
        except zstandard.ZstdError as err:
            raise CorruptObjectError(f"index is not valid zstd: {err}", key=key) from None
        data = load_json_object(text.decode("utf-8", "replace"), key=key, what="segment index")
        if data.get("thread_id") != manifest.thread_id or not isinstance(data.get("turns"), list):
            raise CorruptObjectError("index names another thread, or has no turns", key=key)
        entries = tuple(_entry(item, key=key) for item in data["turns"])
        position, previous = 0, -1
        for entry in entries:
            if entry.offset != position or entry.turn <= previous:
                raise CorruptObjectError("index entries overlap, leave gaps or repeat", key=key)
            if entry.manifest.thread_id != manifest.thread_id:
                raise CorruptObjectError(
                    f"index entry of turn {entry.turn} names another thread", key=key
                )
            position, previous = entry.end, entry.turn
        expected = (
            manifest.index_offset,
            manifest.turns,
            manifest.events,
            manifest.raw_bytes,
            manifest.first_turn,
            manifest.last_turn,
        )
        found = (
            position,
            len(entries),
            sum(e.manifest.events for e in entries),
            sum(e.manifest.raw_bytes for e in entries),
            entries[0].turn if entries else -1,
            entries[-1].turn if entries else -1,
        )
        if found != expected:
            raise CorruptObjectError(
                "index does not add up to the segment manifest (offset, turns, events, "
                f"raw bytes, first, last: {found} != {expected})",
                key=key,
            )
        return cls(manifest, entries)


def frame_manifest(entry: SegmentEntry) -> TurnManifest:
    """The entry's manifest with ``stored_bytes`` set to its frame length in the segment,
    so :meth:`TurnCodec.decode` checks the bytes it is given."""
    return replace(entry.manifest, stored_bytes=entry.length)


def build_segment(
    thread_id: str,
    frames: Sequence[tuple[TurnManifest, bytes]],
    *,
    format_version: int = SEGMENT_FORMAT,
) -> tuple[bytes, SegmentManifest]:
    """Concatenate turn frames (in turn order) and append their index.

    Deterministic: the same turns always give the same bytes, so a re-run of an
    interrupted compaction recognises its own segment by content.

    Raises:
        ValueError: no frames, turns not strictly increasing, another thread's turn, too
            many events, or a manifest too large for S3 metadata.
    """
    if not frames:
        raise ValueError("a segment holds at least one turn")
    entries: list[dict[str, Any]] = []
    position, previous = 0, -1
    for manifest, frame in frames:
        if manifest.thread_id != thread_id or manifest.turn <= previous:
            raise ValueError("segment turns must be of one thread, in increasing order")
        entries.append({"offset": position, "length": len(frame), "manifest": asdict(manifest)})
        position += len(frame)
        previous = manifest.turn
    index_json = json.dumps(
        {
            "format": format_version,
            "kind": "segment-index",
            "thread_id": thread_id,
            "turns": entries,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    compressed = zstandard.ZstdCompressor(level=19, write_checksum=True).compress(index_json)
    index_frame = struct.pack("<II", INDEX_MAGIC, len(compressed)) + compressed
    body = b"".join(frame for _, frame in frames) + index_frame
    events = sum(manifest.events for manifest, _ in frames)
    if events > MAX_SEGMENT_EVENTS:
        raise ValueError(f"a segment holds at most {MAX_SEGMENT_EVENTS} events, not {events}")
    manifests = [manifest for manifest, _ in frames]
    segment = SegmentManifest(
        format=format_version,
        kind=SEGMENT_KIND,
        codec=CODEC,
        thread_id=thread_id,
        first_turn=manifests[0].turn,
        last_turn=manifests[-1].turn,
        turns=len(frames),
        events=events,
        raw_bytes=sum(manifest.raw_bytes for manifest in manifests),
        stored_bytes=len(body),
        index_offset=position,
        index_length=len(index_frame),
        index_sha256=hashlib.sha256(index_frame).hexdigest(),
        dictionaries=tuple(sorted({m.dictionary for m in manifests if m.dictionary})),
    )
    segment.to_metadata()  # refuse what S3 would refuse, before any request
    return body, segment


def _entry(item: Any, *, key: str) -> SegmentEntry:
    if not isinstance(item, dict) or set(item) != {"offset", "length", "manifest"}:
        raise CorruptObjectError("index entry is malformed", key=key)
    offset, length = item["offset"], item["length"]
    if type(offset) is not int or type(length) is not int or offset < 0 or length < 0:
        raise CorruptObjectError("index entry offset or length is not a size", key=key)
    text = json.dumps(item["manifest"], separators=(",", ":"), ensure_ascii=True)
    try:
        manifest = TurnManifest.from_metadata({MANIFEST_METADATA_KEY: text}, key=key)
    except IntegrityError as err:
        raise type(err)(f"index entry: {str(err).removeprefix(key + ': ')}", key=key) from None
    return SegmentEntry(offset, length, manifest)
