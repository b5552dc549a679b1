"""Turn objects (docs/FORMAT.md sections 2 and 4): JSON lines in one zstd frame, encoded,
decoded and verified against their manifest and key. Pure: bytes in, bytes out.

A turn object's body is a single zstd frame whose content is the turn's envelopes,
one JSON line each, every line ending in ``\\n`` (an empty turn is an empty frame).
Its manifest (:mod:`s3_eventstore.format.manifest`) travels as S3 user metadata, so
``event_count`` can read it with a HEAD and a reader can check every byte it downloads.
Streamed turns add a trailer (:mod:`s3_eventstore.format.stream`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import zstandard

from s3_eventstore.envelope import AgentEventEnvelope, format_rfc3339
from s3_eventstore.errors import CorruptObjectError, InvalidEnvelopeError
from s3_eventstore.format.manifest import (
    CODEC,
    DICTIONARY_FORMAT_VERSION,
    FORMAT_VERSION,
    METADATA_LIMIT_BYTES,
    TurnManifest,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.format.dictionary import TrainedDictionary

__all__ = ["EncodedTurn", "TurnCodec", "decompress"]


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
        payload = decompress(
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
            # Archived lines are read as they are: a key twice in one object (refused at
            # from_json since issue 12) is read last-wins, never made unreadable.
            events = [AgentEventEnvelope.from_json(line, unique_keys=False) for line in lines]
        except InvalidEnvelopeError as err:
            raise CorruptObjectError(f"a line is not a valid envelope: {err}", key=key) from err
        first = events[0].timestamp if events else None
        last = events[-1].timestamp if events else None
        if (first, last) != (manifest.first_timestamp, manifest.last_timestamp):
            raise CorruptObjectError("first/last timestamps do not match the manifest", key=key)
        return events


def decompress(
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
