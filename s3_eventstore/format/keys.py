"""Key layout (docs/FORMAT.md section 1): where a turn, a segment or a dictionary lives
in the bucket. Pure functions, no I/O.

``{prefix}threads/shard={hh}/thread={enc}/{turn:020d}.jsonl.zst``

* ``prefix`` is the store's prefix, normalised to end with ``/`` (or empty).
* ``hh`` is the first byte of SHA-256(thread id) in hex: 256 key ranges, so that
  time-ordered ids (UUID v7) do not pile onto one S3 partition.
* ``enc`` is the thread id's UTF-8 bytes percent-encoded, every byte outside
  ``[A-Za-z0-9_-]`` written ``%XX``: no ``/``, dot segment or control character can
  reach the key, and the mapping is reversible. ``shard=``/``thread=`` are Hive-style
  so analytics engines expose them as columns.
* the turn is zero-padded to 20 digits (u64 max has 20), so keys list in turn order.

The key is a function of (thread, turn) alone: the conditional PUT on it is the
single point where one writer wins.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from s3_eventstore.errors import ConfigurationError, InvalidThreadIdError
from s3_eventstore.format.manifest import METADATA_LIMIT_BYTES, largest_metadata_bytes
from s3_eventstore.identifiers import check_thread_id

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_EVENTS",
    "SEGMENT_PREFIX",
    "KeyLayout",
    "ParsedKey",
    "SegmentName",
    "decode_thread",
    "encode_thread",
    "parse_s3_url",
    "parse_segment_name",
    "segment_name",
]

MAX_KEY_BYTES: Final = 1024
"""S3's limit on the UTF-8 length of a key."""
TURN_SUFFIX: Final = ".jsonl.zst"
THREADS_DIR: Final = "threads/"
DICTIONARIES_DIR: Final = "dictionaries/"
SEGMENT_PREFIX: Final = "seg-"
"""Names of segment objects start with this (``seg-{first:020d}-{last:020d}-{events}``)."""
_LONGEST_NAME: Final = 64
"""Room kept for the longest object name a thread folder may hold: a segment name with
8 digits of events is exactly 64 bytes, a turn object name 29."""
MAX_SEGMENT_EVENTS: Final = 99_999_999
"""Events one segment may hold, so its name (8 digits of events) fits the 64 bytes the key
layout keeps for object names in a thread folder."""
_SEGMENT_NAME = re.compile(r"seg-(\d{20})-(\d{20})-(0|[1-9]\d{0,7})\.jsonl\.zst")
_DICTIONARY_ID = re.compile(r"[0-9a-f]{32}")
_TURN_NAME = re.compile(r"(\d{20})\.jsonl\.zst")
_ENCODED = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")


def encode_thread(thread_id: str) -> str:
    """Percent-encode a thread id for use as one key segment (reversible, ASCII only)."""
    return quote(thread_id, safe="", encoding="utf-8").replace(".", "%2E").replace("~", "%7E")


def decode_thread(encoded: str) -> str:
    """Invert :func:`encode_thread`.

    Raises:
        InvalidThreadIdError: ``encoded`` is not something :func:`encode_thread` produces.
    """
    if not _ENCODED.fullmatch(encoded):
        raise InvalidThreadIdError(f"{encoded!r} is not an encoded thread id")
    try:
        thread_id = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidThreadIdError(f"{encoded!r} does not decode to UTF-8") from None
    if encode_thread(thread_id) != encoded:
        raise InvalidThreadIdError(f"{encoded!r} is not in canonical encoding")
    return thread_id


def thread_shard(thread_id: str) -> str:
    """Two hex digits spreading threads over 256 key ranges."""
    return hashlib.sha256(thread_id.encode("utf-8")).hexdigest()[:2]


def normalise_prefix(prefix: str) -> str:
    """Check a store prefix and give it a trailing ``/`` (``""`` stays the bucket root).

    Raises:
        ConfigurationError: a leading ``/``, an empty, ``.`` or ``..`` segment, or a
            control character.
    """
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return ""
    if prefix.startswith("/"):
        raise ConfigurationError(f"prefix {prefix!r} must not start with '/'")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in prefix):
        raise ConfigurationError(f"prefix {prefix!r} contains a control character")
    segments = prefix.rstrip("/").split("/")
    if any(segment in ("", ".", "..") for segment in segments):
        raise ConfigurationError(f"prefix {prefix!r} has an empty, '.' or '..' segment")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"prefix {prefix!r} is not valid Unicode") from None
    normalised = prefix.rstrip("/") + "/"
    if len(normalised.encode("utf-8")) > MAX_KEY_BYTES // 2:
        raise ConfigurationError("prefix is longer than 512 bytes")
    return normalised


@dataclass(frozen=True, slots=True)
class SegmentName:
    """What a segment's object name says: its turn range and event count."""

    first_turn: int
    last_turn: int
    events: int


def segment_name(first_turn: int, last_turn: int, events: int) -> str:
    """The object name of a segment (inside the thread folder).

    A segment's content is fully determined by the immutable turns it holds, so its
    name may carry what a reader needs to count events with a LIST alone.
    """
    if not 0 <= events <= MAX_SEGMENT_EVENTS:
        raise ValueError(f"a segment holds at most {MAX_SEGMENT_EVENTS} events, not {events}")
    return f"seg-{first_turn:020d}-{last_turn:020d}-{events}.jsonl.zst"


def parse_segment_name(name: str) -> SegmentName | None:
    """The parts of a segment object name, or ``None`` if ``name`` is not one."""
    match = _SEGMENT_NAME.fullmatch(name)
    if match is None:
        return None
    first, last, events = (int(group) for group in match.groups())
    return None if first > last else SegmentName(first, last, events)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A key recognised as a turn object."""

    thread_id: str
    turn: int


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The key layout of one store (bucket prefix)."""

    prefix: str
    """Normalised prefix: ``""`` or ending with ``/``."""

    @classmethod
    def for_prefix(cls, prefix: str) -> KeyLayout:
        """Build a layout, normalising the prefix.

        Raises:
            ConfigurationError: the prefix is unusable.
        """
        return cls(normalise_prefix(prefix))

    @property
    def threads_root(self) -> str:
        """Where every thread folder lives."""
        return self.prefix + THREADS_DIR

    def thread_folder(self, thread_id: str) -> str:
        """The folder (ending in ``/``) holding every object of one thread.

        Raises:
            InvalidThreadIdError: the thread id is invalid or too long for S3 keys.
        """
        candidate: object = thread_id
        if not isinstance(candidate, str):  # unhashable or wrong type: refuse before caching
            check_thread_id(candidate)
        return _thread_folder(self.prefix, thread_id)

    def turn_key(self, thread_id: str, turn: int) -> str:
        """The key of a finished turn's object."""
        return f"{self.thread_folder(thread_id)}{turn:020d}{TURN_SUFFIX}"

    def segment_key(self, thread_id: str, first_turn: int, last_turn: int, events: int) -> str:
        """The key of a segment holding turns ``first_turn..last_turn`` (``events`` in all)."""
        return self.thread_folder(thread_id) + segment_name(first_turn, last_turn, events)

    def parse_segment_key(self, key: str, thread_id: str) -> SegmentName | None:
        """The turn range and event count if ``key`` is a segment of ``thread_id``."""
        folder = self.thread_folder(thread_id)
        if not key.startswith(folder):
            return None
        return parse_segment_name(key[len(folder) :])

    @property
    def dictionaries_root(self) -> str:
        """Where trained zstd dictionaries live (outside the thread folders)."""
        return self.prefix + DICTIONARIES_DIR

    def dictionary_key(self, dictionary_id: str) -> str:
        """The key of a dictionary, named by its content hash.

        Raises:
            ConfigurationError: ``dictionary_id`` is not 32 lowercase hex digits.
        """
        if not isinstance(dictionary_id, str) or not _DICTIONARY_ID.fullmatch(dictionary_id):
            raise ConfigurationError(
                f"{dictionary_id!r} is not a dictionary id (32 lowercase hex digits)"
            )
        return f"{self.dictionaries_root}{dictionary_id}.zdict"

    def parse_turn_key(self, key: str, thread_id: str) -> int | None:
        """The turn number if ``key`` is a turn object of ``thread_id``, else ``None``."""
        folder = self.thread_folder(thread_id)
        if not key.startswith(folder):
            return None
        match = _TURN_NAME.fullmatch(key[len(folder) :])
        return int(match.group(1)) if match else None

    def parse_key(self, key: str) -> ParsedKey | None:
        """Recognise any turn object under this prefix; ``None`` for anything else."""
        root = self.threads_root
        if not key.startswith(root):
            return None
        parts = key[len(root) :].split("/")
        if (
            len(parts) != 3
            or not parts[0].startswith("shard=")
            or not parts[1].startswith("thread=")
        ):
            return None
        match = _TURN_NAME.fullmatch(parts[2])
        if match is None:
            return None
        try:
            thread_id = decode_thread(parts[1][len("thread=") :])
        except InvalidThreadIdError:
            return None
        if parts[0] != f"shard={thread_shard(thread_id)}":
            return None
        return ParsedKey(thread_id, int(match.group(1)))

    def thread_of_folder(self, folder: str) -> str | None:
        """The thread id of a folder returned by a delimited LIST, or ``None``."""
        root = self.threads_root
        parts = folder[len(root) :].rstrip("/").split("/") if folder.startswith(root) else []
        if len(parts) != 2 or not parts[1].startswith("thread="):
            return None
        try:
            return decode_thread(parts[1][len("thread=") :])
        except InvalidThreadIdError:
            return None


@lru_cache(maxsize=4096)
def _thread_folder(prefix: str, thread_id: str) -> str:
    check_thread_id(thread_id)
    folder = (
        f"{prefix}{THREADS_DIR}shard={thread_shard(thread_id)}/thread={encode_thread(thread_id)}/"
    )
    if len(folder.encode("utf-8")) + _LONGEST_NAME > MAX_KEY_BYTES:
        raise InvalidThreadIdError(
            f"thread id of {len(thread_id.encode('utf-8'))} UTF-8 bytes is too long: its keys "
            f"would exceed S3's {MAX_KEY_BYTES}-byte key limit under prefix {prefix!r}"
        )
    metadata = largest_metadata_bytes(thread_id)
    if metadata > METADATA_LIMIT_BYTES:
        raise InvalidThreadIdError(
            f"thread id of {len(thread_id)} characters is too long: a turn manifest carries "
            f"it JSON-escaped in S3 user metadata, which would need up to {metadata} bytes "
            f"of S3's {METADATA_LIMIT_BYTES}"
        )
    return folder


_URL_BUCKET: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix``, read literally.

    Everything after the bucket is the prefix (as the AWS CLI reads S3 URLs): ``?``,
    ``#``, ``%``, ``*`` and ``[`` are characters of the prefix, not URL syntax, so
    ``s3://b/runs?x=1`` is prefix ``runs?x=1`` and ``s3://b/50%25`` is ``50%25``. The
    prefix itself is checked where it is used (:meth:`KeyLayout.for_prefix`).

    Raises:
        ConfigurationError: not an ``s3://`` URL with a bucket name.
    """
    scheme, _, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not _URL_BUCKET.fullmatch(bucket):
        raise ConfigurationError(f"{url!r} is not of the form s3://bucket/prefix")
    return bucket, prefix.lstrip("/")
