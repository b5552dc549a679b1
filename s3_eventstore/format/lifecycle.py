"""Turn-key states across processes (docs/FORMAT.md section 11): open turn objects and
stubs. Pure: bytes and metadata in, values out.

The turn key holds, in turn: nothing; an **open** turn object (a turn suspended with
its persisted events: a turn object whose manifest is under ``s3es-open`` instead of
``s3es-manifest``, its body ending with a random *write nonce* so that every write has
its own ETag); a **finished** turn object
(sections 2-3, unchanged); after compaction a **stub** (8 bytes, a zstd skippable frame,
metadata ``s3es-stub`` naming the segment that holds the turn). A LIST tells a stub by
its size alone: no turn object is 8 bytes long (an empty zstd frame with its checksum is
13).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import CorruptObjectError, UnsupportedFormatError
from s3_eventstore.format.manifest import MANIFEST_METADATA_KEY, TurnManifest, load_json_object
from s3_eventstore.format.turn import EncodedTurn

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.format.turn import TurnCodec

__all__ = [
    "LIFECYCLE_FORMAT_VERSION",
    "NONCE_BYTES",
    "OPEN_METADATA_KEY",
    "STUB_BODY",
    "STUB_BYTES",
    "STUB_METADATA_KEY",
    "Stub",
    "encode_open",
    "is_stub_size",
    "open_manifest",
    "with_nonce",
]

LIFECYCLE_FORMAT_VERSION: Final = 3
"""Format of open turn objects, stubs and segments written by a version-3 compaction."""
OPEN_METADATA_KEY: Final = "s3es-open"
"""User-metadata key of an open turn object's manifest (a finished one uses
``s3es-manifest``, so an older reader refuses an open object instead of misreading it)."""
NONCE_MAGIC: Final = 0x184D2A5C
"""zstd skippable-frame magic of an open object's write nonce."""
NONCE_PAYLOAD_BYTES: Final = 16
NONCE_BYTES: Final = 8 + NONCE_PAYLOAD_BYTES
"""Length of the nonce frame at the end of every open turn object."""
STUB_MAGIC: Final = 0x184D2A5B
"""zstd skippable-frame magic of a stub's (empty) frame."""
STUB_BODY: Final = struct.pack("<II", STUB_MAGIC, 0)
"""A stub's whole body: an empty skippable frame (``zstd -dc`` prints nothing)."""
STUB_BYTES: Final = len(STUB_BODY)
STUB_METADATA_KEY: Final = "s3es-stub"
"""User-metadata key of a stub."""
STUB_CONTENT_TYPE: Final = "application/zstd"


def with_nonce(frame: bytes) -> bytes:
    """An open object's body: the turn's zstd frame, then a fresh random nonce frame."""
    return frame + struct.pack("<II", NONCE_MAGIC, NONCE_PAYLOAD_BYTES) + os.urandom(16)


def encode_open(
    codec: TurnCodec,
    thread_id: str,
    turn: int,
    events: Sequence[AgentEventEnvelope],
    *,
    writer: str,
) -> EncodedTurn:
    """An open turn object holding ``events``: the turn frame (``codec`` must have no
    dictionary), a fresh nonce, and the manifest under ``s3es-open``."""
    encoded = codec.encode(thread_id, turn, events, writer=writer)
    body = with_nonce(encoded.body)
    manifest = replace(encoded.manifest, stored_bytes=len(body))
    text = manifest.to_metadata()[MANIFEST_METADATA_KEY]
    return EncodedTurn(body, manifest, {OPEN_METADATA_KEY: text})


def open_manifest(metadata: Mapping[str, str], *, key: str) -> TurnManifest | None:
    """The manifest of an open turn object; ``None`` when the object is not one.

    Raises:
        CorruptObjectError: the manifest is malformed.
        UnsupportedFormatError: it declares a format this library cannot read.
    """
    text = metadata.get(OPEN_METADATA_KEY)
    if text is None:
        return None
    return TurnManifest.from_metadata({MANIFEST_METADATA_KEY: text}, key=key)


def is_stub_size(size: int) -> bool:
    """Whether a listed object of this size under a turn key is a stub."""
    return size == STUB_BYTES


@dataclass(frozen=True, slots=True)
class Stub:
    """What a stub says: which segment holds the compacted turn, and the turn's identity
    (so that its writer can still recognise its own finish)."""

    thread_id: str
    """The thread."""
    turn: int
    """The turn number."""
    segment: str
    """Object name (in the thread folder) of the segment holding the turn."""
    segment_bytes: int
    """That segment's length (its index is read from its end)."""
    events: int
    """Events of the turn (from its manifest)."""
    sha256: str
    """SHA-256 of the turn's payload (from its manifest)."""
    writer: str
    """Writer id of the ``finish_turn`` that wrote the turn (from its manifest)."""

    def to_metadata(self) -> dict[str, str]:
        """The S3 user metadata of the stub object."""
        data: dict[str, Any] = {
            "format": LIFECYCLE_FORMAT_VERSION,
            "kind": "stub",
            "thread_id": self.thread_id,
            "turn": self.turn,
            "segment": self.segment,
            "segment_bytes": self.segment_bytes,
            "events": self.events,
            "sha256": self.sha256,
            "writer": self.writer,
        }
        return {STUB_METADATA_KEY: json.dumps(data, separators=(",", ":"), ensure_ascii=True)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], *, key: str) -> Stub | None:
        """The stub an object's metadata describes; ``None`` when it is not a stub.

        Raises:
            CorruptObjectError: the stub metadata is malformed.
            UnsupportedFormatError: it declares a format this library cannot read.
        """
        text = metadata.get(STUB_METADATA_KEY)
        if text is None:
            return None
        data = load_json_object(text, key=key, what="stub")
        if data.get("format") != LIFECYCLE_FORMAT_VERSION or data.get("kind") != "stub":
            raise UnsupportedFormatError(
                f"stub format {data.get('format')!r} / kind {data.get('kind')!r} is not supported",
                key=key,
            )
        try:
            stub = cls(
                data["thread_id"],
                data["turn"],
                data["segment"],
                data["segment_bytes"],
                data["events"],
                data["sha256"],
                data["writer"],
            )
        except KeyError as err:
            raise CorruptObjectError(f"stub lacks {err}", key=key) from None
        if (
            not all(isinstance(v, str) for v in (stub.thread_id, stub.segment, stub.sha256))
            or not isinstance(stub.writer, str)
            or any(
                type(v) is not int or v < 0 for v in (stub.turn, stub.events, stub.segment_bytes)
            )
            or "/" in stub.segment
        ):
            raise CorruptObjectError("stub field has the wrong type", key=key)
        return stub

    def check_key(self, thread_id: str, turn: int, *, key: str) -> None:
        """Refuse a stub found under another turn's key.

        Raises:
            CorruptObjectError: the stub names another thread or turn.
        """
        if (self.thread_id, self.turn) != (thread_id, turn):
            raise CorruptObjectError(
                f"stub names thread {self.thread_id!r} turn {self.turn}, but the key is "
                f"for thread {thread_id!r} turn {turn}",
                key=key,
            )
