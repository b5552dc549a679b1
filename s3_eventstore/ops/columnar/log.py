"""The commit log of the Parquet tier: which files are published, and which turns they hold.

A data file exists in S3 before it is published; it is published once a log entry names
it. Entries are created with ``If-None-Match: *`` under consecutive numbers, so two
publishers can never both commit entry ``n``, and each entry is written only after its
writer has read every entry before it (see docs/FORMAT.md, section 10).

An entry is two JSON lines (format 2): a header with the files, then the turns and
segments. A reader that needs only the files (``--published-only``) GETs the first
:data:`HEADER_READ_BYTES` of each entry and stops at the first newline, so its cost does
not grow with the number of turns an entry publishes (about 116 bytes each). Format-1
entries (one JSON object) are still read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from s3_eventstore.errors import CorruptObjectError, IntegrityError
from s3_eventstore.s3.concurrency import bounded_gather

if TYPE_CHECKING:
    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "HEADER_READ_BYTES",
    "LOG_DIR",
    "LOG_FORMAT",
    "PUBLISHED_DIR",
    "LogEntry",
    "PublishedFile",
    "PublishedState",
    "PublishedTurn",
    "entry_name",
    "read_state",
]

PUBLISHED_DIR: Final = "published/"
"""The tier's folder under the store's prefix."""
LOG_DIR: Final = "_log/"
"""Commit log folder inside :data:`PUBLISHED_DIR` (``_``: engines skip it)."""
LOG_FORMAT: Final = 2
"""Format written; format 1 (one JSON object, no header line) is still read."""
_FORMATS: Final = frozenset({1, LOG_FORMAT})
HEADER_READ_BYTES: Final = 4 << 10
"""A files-only reader's first ranged GET of an entry: the header line is within it unless
the entry names more than about 40 files (then the whole entry is read)."""
_KIND: Final = "s3es-publish"
_ENTRY_NAME = re.compile(r"(\d{20})\.json")
_FILE_KEY = re.compile(r"day=\d{4}-\d{2}-\d{2}/part-[0-9a-f]{32}\.parquet")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def entry_name(number: int) -> str:
    """``{number:020d}.json``."""
    return f"{number:020d}.json"


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """One data file named by a log entry."""

    key: str
    """Key relative to the tier's folder: ``day=YYYY-MM-DD/part-{32 hex}.parquet``."""
    rows: int
    """Rows (events) in the file."""
    size: int
    """Bytes of the file."""


@dataclass(frozen=True, slots=True)
class PublishedTurn:
    """One turn a log entry publishes."""

    thread_id: str
    turn: int
    events: int
    sha256: str
    """SHA-256 of the turn's payload (the JSON lines, as in its manifest)."""
    file: int | None
    """Index into the entry's files; ``None`` for a turn with no events."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One commit: the files it makes visible and the turns they hold."""

    number: int
    files: tuple[PublishedFile, ...]
    turns: tuple[PublishedTurn, ...] | None
    """``None`` when only the header was read (a files-only reader)."""
    segments: tuple[str, ...] = ()
    """Segment keys (relative to the store's prefix) whose every turn is published by this
    or an earlier entry: later runs skip them without a GET."""
    writer: str = ""
    created_at: str = ""

    def render(self) -> bytes:
        """The entry's bytes: the header line, then the turns line.

        Raises:
            ValueError: the entry was read without its turns.
        """
        if self.turns is None:
            raise ValueError("an entry read without its turns cannot be written")
        header = {
            "format": LOG_FORMAT,
            "kind": _KIND,
            "number": self.number,
            "writer": self.writer,
            "created_at": self.created_at,
            "files": [{"key": f.key, "rows": f.rows, "size": f.size} for f in self.files],
        }
        body = {
            "turns": [[t.thread_id, t.turn, t.events, t.sha256, t.file] for t in self.turns],
            "segments": list(self.segments),
        }
        return orjson.dumps(header) + b"\n" + orjson.dumps(body) + b"\n"

    @classmethod
    def parse(cls, body: bytes, *, key: str, number: int, files_only: bool = False) -> LogEntry:
        """Parse and check an entry read from ``key``; with ``files_only``, ``body`` may be
        just the start of the entry holding its header line (``turns`` is then ``None``).

        Raises:
            CorruptObjectError: not an entry of a known format, or not entry ``number``.
        """
        try:
            return cls._from_data(_entry_data(body, files_only), number, files_only)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CorruptObjectError(f"not a valid publish log entry: {err}", key=key) from None

    @classmethod
    def _from_data(cls, data: dict[str, Any], number: int, files_only: bool) -> LogEntry:
        if data.get("kind") != _KIND:
            raise ValueError("not a publish log entry")
        if data.get("format") not in _FORMATS:
            raise ValueError(f"unsupported format {data.get('format')!r}")
        if data.get("number") != number:
            raise ValueError(f"says number {data.get('number')!r}")
        files = tuple(_file(item) for item in data["files"])
        turns: tuple[PublishedTurn, ...] | None = None
        segments: tuple[str, ...] = ()
        if not files_only:
            turns = tuple(_turn(item, len(files)) for item in data["turns"])
            segments = tuple(str(s) for s in data.get("segments", []))
        return cls(number, files, turns, segments, str(data["writer"]), str(data["created_at"]))


def _entry_data(body: bytes, files_only: bool) -> dict[str, Any]:
    """The entry's fields: the header line's, plus the turns line's unless ``files_only``
    (a format-1 entry is one object holding both)."""
    head, newline, rest = body.partition(b"\n")
    data = orjson.loads(head)
    if not isinstance(data, dict):
        raise TypeError("not a publish log entry")
    if data.get("format") == 1:
        if newline and rest.strip():
            raise ValueError("format 1 is one JSON object")
    elif not newline:
        raise ValueError("no turns line after the header")
    elif not files_only:
        more = orjson.loads(rest)
        if not isinstance(more, dict) or set(more) & set(data):
            raise ValueError("bad turns line")
        data.update(more)
    return data


def _file(item: Any) -> PublishedFile:
    key, rows, size = item["key"], item["rows"], item["size"]
    if not isinstance(key, str) or not _FILE_KEY.fullmatch(key):
        raise ValueError(f"bad file key {key!r}")
    if not (_count(rows) and _count(size)):
        raise ValueError(f"bad rows/size for {key}")
    return PublishedFile(key, rows, size)


def _turn(item: Any, files: int) -> PublishedTurn:
    thread_id, turn, events, sha256, file = item
    if not isinstance(thread_id, str) or not _count(turn) or not _count(events):
        raise ValueError(f"bad turn {item!r}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"bad sha256 in {item!r}")
    if file is not None and not (_count(file) and file < files):
        raise ValueError(f"bad file index in {item!r}")
    if (file is None) != (events == 0):
        raise ValueError(f"a turn has a file exactly when it has events: {item!r}")
    return PublishedTurn(thread_id, turn, events, sha256, file)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(slots=True)
class PublishedState:
    """What the committed log says: every published file and turn."""

    root: str
    """Key of the tier's folder (``{prefix}published/``)."""
    files_only: bool = False
    """Read from the entries' header lines alone: ``turns`` and ``segments`` stay empty
    (enough for reading the tier, never for publishing to it)."""
    entries: list[LogEntry] = field(default_factory=list)
    turns: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)
    """``(thread_id, turn) -> (sha256, data file key)``."""
    segments: set[str] = field(default_factory=set)
    files: dict[str, PublishedFile] = field(default_factory=dict)
    """Absolute key -> file, for every committed file."""

    @property
    def next_number(self) -> int:
        """The number the next commit must take."""
        return len(self.entries)

    @property
    def log_root(self) -> str:
        """Key of the log folder."""
        return self.root + LOG_DIR

    def add(self, entry: LogEntry) -> None:
        """Take in the next entry.

        Raises:
            IntegrityError: the entry is out of order or publishes a turn already published
                (no correct publisher writes either).
        """
        key = self.log_root + entry_name(entry.number)
        if entry.number != len(self.entries):
            raise IntegrityError(
                f"publish log entry {key} follows entry {len(self.entries) - 1}", key=key
            )
        if (entry.turns is None) != self.files_only:
            raise ValueError("an entry without its turns belongs to a files-only state")
        turns = entry.turns or ()
        for turn in turns:
            if (turn.thread_id, turn.turn) in self.turns:
                raise IntegrityError(
                    f"publish log entry {key} publishes turn {turn.turn} of thread "
                    f"{turn.thread_id!r} a second time",
                    key=key,
                )
        for item in entry.files:
            self.files[self.root + item.key] = item
        for turn in turns:
            file_key = "" if turn.file is None else self.root + entry.files[turn.file].key
            self.turns[(turn.thread_id, turn.turn)] = (turn.sha256, file_key)
        self.segments.update(entry.segments)
        self.entries.append(entry)

    def overlaps(self, turns: set[tuple[str, int]]) -> bool:
        """Whether any of ``turns`` is already published.

        Raises:
            ValueError: a files-only state does not know.
        """
        if self.files_only:
            raise ValueError("a files-only state does not know which turns are published")
        return any(turn in self.turns for turn in turns)


async def read_state(
    store: S3EventStore, state: PublishedState | None = None, *, files_only: bool = False
) -> PublishedState:
    """Read the log (from ``state.next_number`` on, when a state is given).

    Costs one LIST of the log folder per 1000 entries and one GET per entry not yet read
    (up to the store's read concurrency at once). ``files_only`` (for readers of the tier)
    reads each entry's header line alone: one GET of at most :data:`HEADER_READ_BYTES`.

    Raises:
        IntegrityError: an entry is malformed, missing from the sequence, or publishes a
            turn twice.
        StorageError: a request failed.
    """
    if state is None:
        state = PublishedState(store.layout.prefix + PUBLISHED_DIR, files_only=files_only)
    numbers: list[int] = []
    async for page in store.list_pages(state.log_root):
        for obj in page.get("Contents", []):
            name = str(obj["Key"])[len(state.log_root) :]
            match = _ENTRY_NAME.fullmatch(name)
            if match is not None and int(match.group(1)) >= state.next_number:
                numbers.append(int(match.group(1)))
    numbers.sort()

    async def read(number: int) -> LogEntry:
        key = state.log_root + entry_name(number)
        body = await (_get_header(store, key) if state.files_only else get_bytes(store, key))
        if body is None:
            raise IntegrityError(f"publish log entry {key} vanished", key=key)
        return LogEntry.parse(body, key=key, number=number, files_only=state.files_only)

    entries = await bounded_gather((read(n) for n in numbers), max(1, store.read_concurrency))
    for entry in entries:
        state.add(entry)
    return state


async def _get_header(store: S3EventStore, key: str) -> bytes | None:
    """The start of an entry holding its header line (the whole entry when the first
    ranged GET holds no newline and may have been cut)."""
    found = await store.objects.get(key, byte_range=(0, HEADER_READ_BYTES))
    if found is None:
        return None
    if b"\n" in found.body or len(found.body) < HEADER_READ_BYTES:
        return found.body
    return await get_bytes(store, key)


async def get_bytes(store: S3EventStore, key: str) -> bytes | None:
    """GET a whole object; ``None`` when it does not exist.

    Raises:
        StorageError: the GET failed.
    """
    found = await store.objects.get(key)
    return None if found is None else found.body
