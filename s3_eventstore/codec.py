"""Turn object encoding: JSON lines, zstd, and the manifest that says how to verify them.

A turn object's body is a single zstd frame whose content is the turn's envelopes,
one JSON line each, every line ending in ``\\n`` (an empty turn is an empty frame).
Its manifest travels as S3 user metadata, so ``event_count`` can read it with a HEAD
and a reader can check every byte it downloads. ``docs/FORMAT.md`` is the spec; this
module is its only implementation here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
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

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_METADATA_KEY",
    "METADATA_LIMIT_BYTES",
    "EncodedTurn",
    "TurnCodec",
    "TurnManifest",
]

FORMAT_VERSION: Final = 1
CODEC: Final = "zstd"
MANIFEST_METADATA_KEY: Final = "s3es-manifest"
"""User-metadata key (sent as ``x-amz-meta-s3es-manifest``) holding the manifest JSON."""
METADATA_LIMIT_BYTES: Final = 2048
"""AWS S3 caps user-defined metadata at 2 KB (keys plus values); moto does not enforce it."""


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

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata carrying this manifest."""
        text = json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=True)
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
        try:
            data = json.loads(text)
        except ValueError as err:
            raise CorruptObjectError(f"manifest is not JSON: {err}", key=key) from None
        if not isinstance(data, dict):
            raise CorruptObjectError("manifest is not a JSON object", key=key)
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"format version {version!r} is not supported (this library reads "
                f"{FORMAT_VERSION})",
                key=key,
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


@dataclass(frozen=True, slots=True)
class EncodedTurn:
    """A turn ready to PUT: the compressed body and its manifest."""

    body: bytes
    manifest: TurnManifest


class TurnCodec:
    """Encodes and verifies turn objects. One per store; not shared across threads."""

    def __init__(self, level: int = 3) -> None:
        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be in 1..22, not {level}")
        self.level = level
        # Frame checksums catch corruption of the compressed bytes even before the manifest
        # checksum does; the content size lets `zstd -l` and streaming readers size buffers.
        self._compressor = zstandard.ZstdCompressor(
            level=level, write_checksum=True, write_content_size=True
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
        payload = b"".join([event.to_json() + b"\n" for event in events])
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
        size = sum(len(k) + len(v) for k, v in manifest.to_metadata().items())
        if size > METADATA_LIMIT_BYTES:
            raise InvalidEnvelopeError(
                f"the manifest of turn {turn} needs {size} bytes of metadata, over S3's "
                f"{METADATA_LIMIT_BYTES}; the thread id is too long"
            )
        return EncodedTurn(body, manifest)

    @staticmethod
    def decode(
        body: bytes,
        manifest: TurnManifest,
        *,
        key: str,
        thread_id: str,
        turn: int,
    ) -> list[AgentEventEnvelope]:
        """Decompress and verify a turn object against its manifest and its key.

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
        payload = _decompress(body, limit=manifest.raw_bytes, key=key)
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


def _decompress(body: bytes, *, limit: int, key: str) -> bytes:
    """Decompress every frame of ``body``, reading at most ``limit + 1`` bytes (no bombs)."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
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
