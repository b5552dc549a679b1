"""Streamed turn objects (docs/FORMAT.md section 3.1): the stream header,
the manifest trailer, and the incremental encoder. Pure: no I/O.

Streamed turns (turns larger than the store's ``max_turn_buffer_bytes``, uploaded with
a multipart upload while events are still appended) cannot carry their manifest as
metadata: S3 fixes metadata at CreateMultipartUpload, before the count, checksum and
last timestamp are known. Their body is the same single zstd frame of JSON lines,
followed by a *trailer*: one zstd skippable frame (magic ``0x184D2A5E``, 4096-byte
payload) holding the manifest JSON padded with spaces. Every zstd decoder skips it,
so the body still decompresses to exactly the JSON lines. Their metadata is a
:class:`StreamHeader` under ``s3es-stream`` (no ``s3es-manifest``), naming the thread,
turn and writer, and saying the manifest is in the trailer. ``stored_bytes`` counts the
whole body, trailer included. The manifest itself is unchanged (format 1).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import zstandard

from s3_eventstore.envelope import format_rfc3339
from s3_eventstore.errors import CorruptObjectError, InvalidEnvelopeError, UnsupportedFormatError
from s3_eventstore.format.manifest import (
    CODEC,
    FORMAT_VERSION,
    MANIFEST_METADATA_KEY,
    METADATA_LIMIT_BYTES,
    TurnManifest,
    load_json_object,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from s3_eventstore.envelope import AgentEventEnvelope

__all__ = [
    "STREAM_METADATA_KEY",
    "TRAILER_BYTES",
    "StreamHeader",
    "TurnStreamEncoder",
    "is_streamed",
    "read_manifest",
]

STREAM_METADATA_KEY: Final = "s3es-stream"
"""User-metadata key of a streamed turn object (its manifest is in the trailer)."""
TRAILER_MAGIC: Final = 0x184D2A5E
"""zstd skippable-frame magic (any of 0x184D2A50..5F is skippable) marking the trailer."""
TRAILER_PAYLOAD_BYTES: Final = 4096
"""Fixed trailer payload size: a reader fetches the manifest with one ranged GET."""
TRAILER_BYTES: Final = 8 + TRAILER_PAYLOAD_BYTES
"""The trailer's length: magic and size (two little-endian u32), then the payload."""
_RAW_BATCH_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class StreamHeader:
    """The metadata of a streamed turn object: what is known when its upload starts."""

    format: int
    """Format version (the same as the trailer's manifest)."""
    codec: str
    """Compression of the body; ``"zstd"``."""
    thread_id: str
    """The thread id exactly."""
    turn: int
    """Turn number."""
    writer: str
    """Random id of the writer; the trailer's manifest must name the same one."""
    manifest: str = "trailer"
    """Where the manifest is: the body's last ``TRAILER_BYTES`` bytes."""

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata of the streamed object.

        Raises:
            InvalidEnvelopeError: it needs more than S3's 2 KB of metadata (a long thread id).
        """
        text = json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=True)
        metadata = {STREAM_METADATA_KEY: text}
        size = sum(len(k) + len(v) for k, v in metadata.items())
        if size > METADATA_LIMIT_BYTES:
            raise InvalidEnvelopeError(
                f"the stream header of turn {self.turn} needs {size} bytes of metadata, "
                f"over S3's {METADATA_LIMIT_BYTES}; the thread id is too long"
            )
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, key: str) -> StreamHeader | None:
        """The stream header, or ``None`` when the object is not a streamed turn.

        Raises:
            CorruptObjectError: the header is malformed.
            UnsupportedFormatError: it declares a format or codec this library cannot read.
        """
        text = metadata.get(STREAM_METADATA_KEY)
        if text is None:
            return None
        data = _load_stream_header(text, key=key, what="stream header")
        try:
            header = cls(**data)
        except TypeError as err:
            raise CorruptObjectError(f"stream header fields are wrong: {err}", key=key) from None
        if (
            type(header.turn) is not int
            or not isinstance(header.thread_id, str)
            or not isinstance(header.writer, str)
            or header.manifest != "trailer"
        ):
            raise CorruptObjectError("stream header field has the wrong value", key=key)
        return header

    def manifest_from_trailer(self, tail: bytes, *, key: str) -> TurnManifest:
        """Parse the manifest from the body's last ``TRAILER_BYTES`` (``tail`` may hold more).

        Raises:
            CorruptObjectError: no valid trailer, or it disagrees with this header.
            UnsupportedFormatError: as :meth:`TurnManifest.from_metadata`.
        """
        trailer = tail[-TRAILER_BYTES:]
        if len(trailer) != TRAILER_BYTES:
            raise CorruptObjectError("streamed object is shorter than its trailer", key=key)
        magic, size = struct.unpack_from("<II", trailer)
        if magic != TRAILER_MAGIC or size != TRAILER_PAYLOAD_BYTES:
            raise CorruptObjectError("streamed object does not end with its trailer", key=key)
        try:
            text = trailer[8:].decode("ascii").rstrip(" ")
        except UnicodeDecodeError:
            raise CorruptObjectError("trailer manifest is not ASCII", key=key) from None
        manifest = TurnManifest.from_metadata({MANIFEST_METADATA_KEY: text}, key=key)
        if (manifest.thread_id, manifest.turn, manifest.writer) != (
            self.thread_id,
            self.turn,
            self.writer,
        ):
            raise CorruptObjectError("trailer manifest disagrees with the stream header", key=key)
        return manifest


def read_manifest(metadata: Mapping[str, str], body: bytes | None, *, key: str) -> TurnManifest:
    """The manifest of any turn object: from its metadata, or from a streamed object's trailer.

    ``body`` is the object body (or at least its last ``TRAILER_BYTES``); it is only needed
    for streamed objects, which :func:`is_streamed` recognises from the metadata alone.

    Raises:
        CorruptObjectError: no manifest, or a malformed one.
        UnsupportedFormatError: a format version or codec this library cannot read.
        ValueError: a streamed object's manifest was asked for without its body.
    """
    header = StreamHeader.from_metadata(metadata, key=key)
    if header is None:
        return TurnManifest.from_metadata(metadata, key=key)
    if body is None:
        raise ValueError(f"{key} is a streamed turn object: its manifest is in the body")
    return header.manifest_from_trailer(body, key=key)


def is_streamed(metadata: Mapping[str, str]) -> bool:
    """True when the object's manifest is in its trailer rather than its metadata."""
    return STREAM_METADATA_KEY in metadata and MANIFEST_METADATA_KEY not in metadata


class TurnStreamEncoder:
    """Encodes one turn incrementally: the streamed twin of :meth:`TurnCodec.encode`.

    Appends are compressed as they come, in one zstd frame, while the payload's SHA-256,
    size, count and first/last timestamps are tracked, so only compressed output waiting
    to be uploaded stays in memory. Not thread-safe; one per streamed turn.
    """

    def __init__(self, thread_id: str, turn: int, *, level: int, writer: str) -> None:
        self.header = StreamHeader(FORMAT_VERSION, CODEC, thread_id, turn, writer)
        self.header.to_metadata()  # refuse a header S3 would refuse, before any upload
        self._compressor = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        self._sha256 = hashlib.sha256()
        self._batch = bytearray()
        self.events = 0
        """Events encoded so far."""
        self.raw_bytes = 0
        """Length of the JSON-lines payload so far."""
        self.stored_bytes = 0
        """Compressed bytes produced so far (trailer included once finished)."""
        self.first_timestamp: str | None = None
        self.last_timestamp: str | None = None
        self._ending: bytes | None = None
        """The frame's last bytes once :meth:`finish` flushed it (see there)."""
        self.manifest: TurnManifest | None = None
        """Set by :meth:`finish`; after it, nothing more can be added."""

    @property
    def batch_bytes(self) -> int:
        """Uncompressed bytes waiting to be compressed (at most 256 KiB and one event)."""
        return len(self._batch)

    def add(self, envelope: AgentEventEnvelope) -> bytes:
        """Encode one event; returns compressed bytes ready to upload (often ``b""``)."""
        if self.manifest is not None or self._ending is not None:
            raise RuntimeError("the stream is finished")
        line = envelope.to_json()
        self._batch += line
        self._batch += b"\n"
        self.events += 1
        self.raw_bytes += len(line) + 1
        if self.first_timestamp is None:
            self.first_timestamp = envelope.timestamp
        self.last_timestamp = envelope.timestamp
        if len(self._batch) < _RAW_BATCH_BYTES:
            return b""
        return self._compress_batch()

    def _compress_batch(self) -> bytes:
        self._sha256.update(self._batch)
        out = self._compressor.compress(bytes(self._batch))
        self._batch.clear()
        self.stored_bytes += len(out)
        return out

    def finish(self, finished_at: datetime | None = None) -> bytes:
        """End the frame and append the trailer; returns the body's remaining bytes.

        Sets :attr:`manifest`.

        Raises:
            RuntimeError: the stream was finished already.
        """
        if self.manifest is not None:
            raise RuntimeError("the stream is finished")
        if self._ending is None:
            # Once flushed, the zstd frame is closed for good (compressing again raises
            # ZstdError): keep its last bytes, so that a retry after a failure below
            # finishes from here instead.
            out = self._compress_batch()
            flushed = self._compressor.flush()
            self.stored_bytes += len(flushed) + TRAILER_BYTES
            self._ending = out + flushed
        manifest = TurnManifest(
            format=FORMAT_VERSION,
            codec=CODEC,
            thread_id=self.header.thread_id,
            turn=self.header.turn,
            events=self.events,
            raw_bytes=self.raw_bytes,
            stored_bytes=self.stored_bytes,
            sha256=self._sha256.hexdigest(),
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            finished_at=format_rfc3339(finished_at or datetime.now(UTC)),
            writer=self.header.writer,
        )
        text = manifest.to_metadata()[MANIFEST_METADATA_KEY].encode("ascii")
        if len(text) > TRAILER_PAYLOAD_BYTES:  # unreachable: thread ids fit in S3 keys
            raise InvalidEnvelopeError(f"the manifest of turn {manifest.turn} is too long")
        trailer = struct.pack("<II", TRAILER_MAGIC, TRAILER_PAYLOAD_BYTES)
        trailer += text.ljust(TRAILER_PAYLOAD_BYTES, b" ")
        self.manifest = manifest
        return self._ending + trailer


def _load_stream_header(text: str, *, key: str, what: str) -> dict[str, Any]:
    data = load_json_object(text, key=key, what=what)
    if data.get("format") != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"format version {data.get('format')!r} is not supported (this library reads "
            f"{FORMAT_VERSION})",
            key=key,
        )
    if data.get("codec") != CODEC:
        raise UnsupportedFormatError(f"codec {data.get('codec')!r} is not supported", key=key)
    return data
