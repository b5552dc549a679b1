"""Turn object encoding: JSON lines, zstd, and the manifest that says how to verify them.

A turn object's body is a single zstd frame whose content is the turn's envelopes,
one JSON line each, every line ending in ``\\n`` (an empty turn is an empty frame).
Its manifest travels as S3 user metadata, so ``event_count`` can read it with a HEAD
and a reader can check every byte it downloads. ``docs/FORMAT.md`` is the spec; this
module is its only implementation here.

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
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import zstandard

from s3_eventstore.envelope import AgentEventEnvelope, format_rfc3339
from s3_eventstore.errors import (
    CorruptObjectError,
    InvalidEnvelopeError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from s3_eventstore.dictionary import TrainedDictionary

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_METADATA_KEY",
    "METADATA_LIMIT_BYTES",
    "STREAM_METADATA_KEY",
    "TRAILER_BYTES",
    "EncodedTurn",
    "StreamHeader",
    "TurnCodec",
    "TurnManifest",
    "TurnStreamEncoder",
]

FORMAT_VERSION: Final = 1
"""Format of a turn object compressed without a dictionary (what plain zstd reads)."""
DICTIONARY_FORMAT_VERSION: Final = 2
"""Format of a turn object compressed with a trained dictionary (its manifest names it)."""
READABLE_FORMATS: Final = frozenset({FORMAT_VERSION, DICTIONARY_FORMAT_VERSION})
CODEC: Final = "zstd"
MANIFEST_METADATA_KEY: Final = "s3es-manifest"
"""User-metadata key (sent as ``x-amz-meta-s3es-manifest``) holding the manifest JSON."""
METADATA_LIMIT_BYTES: Final = 2048
"""AWS S3 caps user-defined metadata at 2 KB (keys plus values); moto does not enforce it."""
STREAM_METADATA_KEY: Final = "s3es-stream"
"""User-metadata key of a streamed turn object (its manifest is in the trailer)."""
TRAILER_MAGIC: Final = 0x184D2A5E
"""zstd skippable-frame magic (any of 0x184D2A50..5F is skippable) marking the trailer."""
TRAILER_PAYLOAD_BYTES: Final = 4096
"""Fixed trailer payload size: a reader fetches the manifest with one ranged GET."""
TRAILER_BYTES: Final = 8 + TRAILER_PAYLOAD_BYTES
"""The trailer's length: magic and size (two little-endian u32), then the payload."""
_RAW_BATCH_BYTES: Final = 256 * 1024
"""A streamed turn compresses JSON lines in batches of this size (fewer zstd calls)."""


@dataclass(frozen=True, slots=True)
class TurnManifest:
    """What a turn object holds and how to verify it. Serialised as compact ASCII JSON."""

    format: int
    """Format version of the object (see docs/FORMAT.md)."""
    codec: str
    """Compression of the body; ``"zstd"``."""
    thread_id: str
    """The thread id exactly (JSON-escaped to ASCII in the metadata header)."""
    turn: int
    """Turn number."""
    events: int
    """Number of JSON lines (envelopes) in the body."""
    raw_bytes: int
    """Length of the uncompressed JSON-lines payload."""
    stored_bytes: int
    """Length of the object body as stored (compressed)."""
    sha256: str
    """Lowercase hex SHA-256 of the uncompressed payload."""
    first_timestamp: str | None
    """``timestamp`` of the first event as written, ``None`` for an empty turn."""
    last_timestamp: str | None
    """``timestamp`` of the last event as written, ``None`` for an empty turn."""
    finished_at: str
    """When the writer closed the turn (RFC 3339, UTC)."""
    writer: str
    """Random id of the ``finish_turn`` that wrote the object; lets a retry recognise its own."""
    dictionary: str | None = None
    """Id of the zstd dictionary the body needs (format 2); ``None`` (absent) in format 1."""

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata carrying this manifest."""
        # Not dataclasses.asdict: it deep-copies every field, and was 44% of finish_turn.
        data = {name: getattr(self, name) for name in _MANIFEST_FIELDS}
        if self.dictionary is None:
            del data["dictionary"]  # format 1 manifests stay byte for byte what they were
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
        return {MANIFEST_METADATA_KEY: text}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, key: str) -> TurnManifest:
        """Parse the manifest from S3 user metadata.

        Raises:
            CorruptObjectError: there is no manifest, or it is malformed.
            UnsupportedFormatError: it declares a format version or codec this library
                cannot read.
        """
        text = metadata.get(MANIFEST_METADATA_KEY)
        if text is None:
            raise CorruptObjectError("object has no s3es-manifest metadata", key=key)
        data = load_json_object(text, key=key, what="manifest")
        version = data.get("format")
        if version not in READABLE_FORMATS or type(version) is not int:
            raise UnsupportedFormatError(
                f"format version {version!r} is not supported (this library reads "
                f"{FORMAT_VERSION} and {DICTIONARY_FORMAT_VERSION})",
                key=key,
            )
        if (version == DICTIONARY_FORMAT_VERSION) != isinstance(data.get("dictionary"), str):
            raise CorruptObjectError(
                "a format 2 manifest names its dictionary; a format 1 manifest has none", key=key
            )
        if data.get("codec") != CODEC:
            raise UnsupportedFormatError(f"codec {data.get('codec')!r} is not supported", key=key)
        try:
            manifest = cls(**data)
        except TypeError as err:
            raise CorruptObjectError(f"manifest fields are wrong: {err}", key=key) from None
        manifest._check_types(key)
        return manifest

    def _check_types(self, key: str) -> None:
        ints = (self.turn, self.events, self.raw_bytes, self.stored_bytes)
        strings = (self.thread_id, self.sha256, self.finished_at, self.writer)
        optional = (self.first_timestamp, self.last_timestamp)
        if (
            any(type(value) is not int or value < 0 for value in ints)
            or any(not isinstance(value, str) for value in strings)
            or any(value is not None and not isinstance(value, str) for value in optional)
        ):
            raise CorruptObjectError("manifest field has the wrong type", key=key)


_MANIFEST_FIELDS: Final = tuple(field.name for field in fields(TurnManifest))


@dataclass(frozen=True, slots=True)
class EncodedTurn:
    """A turn ready to PUT: the compressed body and its manifest."""

    body: bytes
    manifest: TurnManifest
    metadata: dict[str, str]
    """``manifest.to_metadata()``, rendered once (finish_turn is CPU-sensitive)."""


class TurnCodec:
    """Encodes and verifies turn objects. One per store; not shared across threads."""

    def __init__(self, level: int = 3, dictionary: TrainedDictionary | None = None) -> None:
        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be in 1..22, not {level}")
        self.level = level
        self.dictionary = dictionary
        """The dictionary turns are compressed with, if any (opt-in: see dictionary.py)."""
        # Frame checksums catch corruption of the compressed bytes even before the manifest
        # checksum does; the content size lets `zstd -l` and streaming readers size buffers.
        self._compressor = zstandard.ZstdCompressor(
            level=level,
            write_checksum=True,
            write_content_size=True,
            dict_data=None if dictionary is None else dictionary.zstd_dict,
        )

    def encode(
        self,
        thread_id: str,
        turn: int,
        events: Sequence[AgentEventEnvelope],
        *,
        writer: str,
    ) -> EncodedTurn:
        """Serialise and compress a turn, and describe it in a manifest."""
        payload = b"\n".join([event.to_json() for event in events])
        if events:
            payload += b"\n"
        body = self._compressor.compress(payload)
        manifest = TurnManifest(
            format=FORMAT_VERSION,
            codec=CODEC,
            thread_id=thread_id,
            turn=turn,
            events=len(events),
            raw_bytes=len(payload),
            stored_bytes=len(body),
            sha256=hashlib.sha256(payload).hexdigest(),
            first_timestamp=events[0].timestamp if events else None,
            last_timestamp=events[-1].timestamp if events else None,
            finished_at=format_rfc3339(datetime.now(UTC)),
            writer=writer,
        )
        if self.dictionary is not None:
            manifest = replace(
                manifest, format=DICTIONARY_FORMAT_VERSION, dictionary=self.dictionary.id
            )
        metadata = manifest.to_metadata()
        size = sum(len(k) + len(v) for k, v in metadata.items())
        if size > METADATA_LIMIT_BYTES:
            raise InvalidEnvelopeError(
                f"the manifest of turn {turn} needs {size} bytes of metadata, over S3's "
                f"{METADATA_LIMIT_BYTES}; the thread id is too long"
            )
        return EncodedTurn(body, manifest, metadata)

    @staticmethod
    def decode(
        body: bytes,
        manifest: TurnManifest,
        *,
        key: str,
        thread_id: str,
        turn: int,
        dictionary: TrainedDictionary | None = None,
    ) -> list[AgentEventEnvelope]:
        """Decompress and verify a turn object against its manifest and its key.

        ``dictionary`` must be the one the manifest names (the caller fetches it by id).

        Raises:
            CorruptObjectError: anything does not match: sizes, checksum, line count,
                timestamps, thread or turn, or a line that is not a valid envelope.
        """
        if manifest.thread_id != thread_id or manifest.turn != turn:
            raise CorruptObjectError(
                f"manifest names thread {manifest.thread_id!r} turn {manifest.turn}, "
                f"but the key is for thread {thread_id!r} turn {turn}",
                key=key,
            )
        if len(body) != manifest.stored_bytes:
            raise CorruptObjectError(
                f"body is {len(body)} bytes, manifest says {manifest.stored_bytes}", key=key
            )
        if manifest.dictionary != (None if dictionary is None else dictionary.id):
            raise ValueError(f"{key} needs dictionary {manifest.dictionary!r}")
        payload = _decompress(
            body,
            limit=manifest.raw_bytes,
            key=key,
            dict_data=None if dictionary is None else dictionary.zstd_dict,
        )
        if len(payload) != manifest.raw_bytes:
            raise CorruptObjectError(
                f"payload is {len(payload)} bytes, manifest says {manifest.raw_bytes}", key=key
            )
        if hashlib.sha256(payload).hexdigest() != manifest.sha256:
            raise CorruptObjectError("payload SHA-256 does not match the manifest", key=key)
        lines = payload.split(b"\n")
        if lines[-1] != b"":
            raise CorruptObjectError("payload does not end with a newline", key=key)
        del lines[-1]
        if len(lines) != manifest.events:
            raise CorruptObjectError(
                f"payload has {len(lines)} lines, manifest says {manifest.events}", key=key
            )
        try:
            events = [AgentEventEnvelope.from_json(line) for line in lines]
        except InvalidEnvelopeError as err:
            raise CorruptObjectError(f"a line is not a valid envelope: {err}", key=key) from err
        first = events[0].timestamp if events else None
        last = events[-1].timestamp if events else None
        if (first, last) != (manifest.first_timestamp, manifest.last_timestamp):
            raise CorruptObjectError("first/last timestamps do not match the manifest", key=key)
        return events


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
        self.manifest: TurnManifest | None = None
        """Set by :meth:`finish`; after it, nothing more can be added."""

    @property
    def batch_bytes(self) -> int:
        """Uncompressed bytes waiting to be compressed (at most 256 KiB and one event)."""
        return len(self._batch)

    def add(self, envelope: AgentEventEnvelope) -> bytes:
        """Encode one event; returns compressed bytes ready to upload (often ``b""``)."""
        if self.manifest is not None:
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
        out = self._compress_batch()
        flushed = self._compressor.flush()
        self.stored_bytes += len(flushed) + TRAILER_BYTES
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
        return out + flushed + trailer


def load_json_object(text: str, *, key: str, what: str) -> dict[str, Any]:
    """Parse metadata or index JSON that must be an object; anything else is corruption.

    Raises:
        CorruptObjectError: not JSON, or not a JSON object.
    """
    try:
        data = json.loads(text)
    except ValueError as err:
        raise CorruptObjectError(f"{what} is not JSON: {err}", key=key) from None
    if not isinstance(data, dict):
        raise CorruptObjectError(f"{what} is not a JSON object", key=key)
    return data


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


def _decompress(
    body: bytes, *, limit: int, key: str, dict_data: zstandard.ZstdCompressionDict | None = None
) -> bytes:
    """Decompress every frame of ``body``, reading at most ``limit + 1`` bytes (no bombs)."""
    try:
        decompressor = zstandard.ZstdDecompressor(dict_data=dict_data)
        reader = decompressor.stream_reader(body, read_across_frames=True)
        with reader:
            chunks = []
            remaining = limit + 1
            while remaining > 0:
                chunk = reader.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
    except zstandard.ZstdError as err:
        raise CorruptObjectError(f"body is not valid zstd: {err}", key=key) from None
    return b"".join(chunks)


def manifest_json(manifest: TurnManifest) -> dict[str, Any]:
    """The manifest as a plain dict (for reports and the CLI)."""
    return asdict(manifest)
