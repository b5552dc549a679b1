"""Turn manifests (docs/FORMAT.md section 3): what a turn object holds and how to
verify it, carried as S3 user metadata (``s3es-manifest``). Pure: no I/O.

Also the format constants every other format module shares, and the one parser of JSON
objects read from metadata and indexes (anything else is corruption).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import CorruptObjectError, UnsupportedFormatError
from s3_eventstore.timestamps import MAX_TIMESTAMP_CHARS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CODEC",
    "DICTIONARY_FORMAT_VERSION",
    "FORMAT_VERSION",
    "MANIFEST_METADATA_KEY",
    "METADATA_LIMIT_BYTES",
    "READABLE_FORMATS",
    "SHORTEST_LINE_BYTES",
    "TurnManifest",
    "check_against_listing",
    "largest_metadata_bytes",
    "load_json_object",
    "manifest_json",
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
        _check_types(manifest, key)
        return manifest


def _check_types(manifest: TurnManifest, key: str) -> None:
    ints = (manifest.turn, manifest.events, manifest.raw_bytes, manifest.stored_bytes)
    strings = (manifest.thread_id, manifest.sha256, manifest.finished_at, manifest.writer)
    optional = (manifest.first_timestamp, manifest.last_timestamp)
    if (
        any(type(value) is not int or value < 0 for value in ints)
        or any(not isinstance(value, str) for value in strings)
        or any(value is not None and not isinstance(value, str) for value in optional)
    ):
        raise CorruptObjectError("manifest field has the wrong type", key=key)


_WORST_TIMESTAMP: Final = "2025-06-01\x0012:00:00." + "9" * 38 + "-23:59"
"""The longest timestamp an envelope may carry, with the separator that JSON escapes
longest (``\u0000``): what a manifest's first and last timestamp can cost at most."""
assert len(_WORST_TIMESTAMP) == MAX_TIMESTAMP_CHARS
_U64_MAX: Final = 2**64 - 1


SHORTEST_LINE_BYTES: Final = len(
    b'{"event_id":"00000000000000000000000000000000","sequence":0,'
    b'"timestamp":"0000-01-01T00:00:00Z","type":"x"}\n'
)
"""The shortest JSON line a valid envelope can have (newline included): a manifest
claiming more events than ``raw_bytes // SHORTEST_LINE_BYTES`` lies."""


def check_against_listing(
    manifest: TurnManifest, *, key: str, thread_id: str, turn: int, size: int
) -> None:
    """Check what a manifest says against what its key and a LIST say, without the body:
    the thread and turn its key names, the object's size, and an event count its payload
    could hold. Reads that trust a manifest (counts from HEADs) call this; the full read
    checks the same and more (:meth:`TurnCodec.decode`).

    Raises:
        CorruptObjectError: anything disagrees.
    """
    if manifest.thread_id != thread_id or manifest.turn != turn:
        raise CorruptObjectError(
            f"manifest names thread {manifest.thread_id!r} turn {manifest.turn}, "
            f"but the key is for thread {thread_id!r} turn {turn}",
            key=key,
        )
    if manifest.stored_bytes != size:
        raise CorruptObjectError(
            f"object is {size} bytes, manifest says {manifest.stored_bytes}", key=key
        )
    if manifest.events * SHORTEST_LINE_BYTES > manifest.raw_bytes or (
        (manifest.events == 0) != (manifest.raw_bytes == 0)
    ):
        raise CorruptObjectError(
            f"manifest says {manifest.events} events in {manifest.raw_bytes} bytes of JSON "
            f"lines, which cannot be (a line is at least {SHORTEST_LINE_BYTES} bytes)",
            key=key,
        )
    if (manifest.events == 0) != (manifest.first_timestamp is None) or (
        (manifest.first_timestamp is None) != (manifest.last_timestamp is None)
    ):
        raise CorruptObjectError("manifest timestamps do not match its event count", key=key)


def largest_metadata_bytes(thread_id: str) -> int:
    """The most S3 user metadata (key plus value) any turn manifest of ``thread_id`` can
    need: every number at its widest, both timestamps as long as envelopes may have them,
    a dictionary named. The key layout refuses thread ids for which this exceeds
    :data:`METADATA_LIMIT_BYTES`, at ``append``, so that every turn can be finished."""
    worst = TurnManifest(
        format=DICTIONARY_FORMAT_VERSION,
        codec=CODEC,
        thread_id=thread_id,
        turn=_U64_MAX,
        events=_U64_MAX,
        raw_bytes=_U64_MAX,
        stored_bytes=_U64_MAX,
        sha256="f" * 64,
        first_timestamp=_WORST_TIMESTAMP,
        last_timestamp=_WORST_TIMESTAMP,
        finished_at="9999-12-31T23:59:59.999999Z",
        writer="f" * 32,
        dictionary="f" * 32,
    )
    return sum(len(key) + len(value) for key, value in worst.to_metadata().items())


_MANIFEST_FIELDS: Final = tuple(field.name for field in fields(TurnManifest))


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


def manifest_json(manifest: TurnManifest) -> dict[str, Any]:
    """The manifest as a plain dict (for reports and the CLI)."""
    return asdict(manifest)
