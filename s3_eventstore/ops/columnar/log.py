"""The commit log of the Parquet tier: which files are published, and which turns they hold.

A data file exists in S3 before it is published; it is published once a log entry names
it. Entries are created with ``If-None-Match: *`` under consecutive numbers, so two
publishers can never both commit entry ``n``, and each entry is written only after its
writer has read every entry before it (see docs/FORMAT.md, section 10).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from s3_eventstore.errors import CorruptObjectError, IntegrityError

if TYPE_CHECKING:
    from s3_eventstore.s3.store import S3EventStore

__all__ = [
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
LOG_FORMAT: Final = 1
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
    turns: tuple[PublishedTurn, ...]
    segments: tuple[str, ...] = ()
    """Segment keys (relative to the store's prefix) whose every turn is published by this
    or an earlier entry: later runs skip them without a GET."""
    writer: str = ""
    created_at: str = ""

    def render(self) -> bytes:
        """The entry's JSON bytes."""
        return orjson.dumps(
            {
                "format": LOG_FORMAT,
                "kind": _KIND,
                "number": self.number,
                "writer": self.writer,
                "created_at": self.created_at,
                "files": [{"key": f.key, "rows": f.rows, "size": f.size} for f in self.files],
                "turns": [[t.thread_id, t.turn, t.events, t.sha256, t.file] for t in self.turns],
                "segments": list(self.segments),
            }
        )

    @classmethod
    def parse(cls, body: bytes, *, key: str, number: int) -> LogEntry:
        """Parse and check an entry read from ``key``.

        Raises:
            CorruptObjectError: not an entry of this format, or not entry ``number``.
        """
        try:
            return cls._from_data(orjson.loads(body), number)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CorruptObjectError(f"not a valid publish log entry: {err}", key=key) from None

    @classmethod
    def _from_data(cls, data: Any, number: int) -> LogEntry:
        if not isinstance(data, dict) or data.get("kind") != _KIND:
            raise ValueError("not a publish log entry")
        if data.get("format") != LOG_FORMAT:
            raise ValueError(f"unsupported format {data.get('format')!r}")
        if data.get("number") != number:
            raise ValueError(f"says number {data.get('number')!r}")
        files = tuple(_file(item) for item in data["files"])
        turns = tuple(_turn(item, len(files)) for item in data["turns"])
        segments = tuple(str(s) for s in data.get("segments", []))
        return cls(number, files, turns, segments, str(data["writer"]), str(data["created_at"]))


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
        for turn in entry.turns:
            if (turn.thread_id, turn.turn) in self.turns:
                raise IntegrityError(
                    f"publish log entry {key} publishes turn {turn.turn} of thread "
                    f"{turn.thread_id!r} a second time",
                    key=key,
                )
        for item in entry.files:
            self.files[self.root + item.key] = item
        for turn in entry.turns:
            file_key = "" if turn.file is None else self.root + entry.files[turn.file].key
            self.turns[(turn.thread_id, turn.turn)] = (turn.sha256, file_key)
        self.segments.update(entry.segments)
        self.entries.append(entry)

    def overlaps(self, turns: set[tuple[str, int]]) -> bool:
        """Whether any of ``turns`` is already published."""
        return any(turn in self.turns for turn in turns)


async def read_state(store: S3EventStore, state: PublishedState | None = None) -> PublishedState:
    """Read the log (from ``state.next_number`` on, when a state is given).

    Costs one LIST of the log folder per 1000 entries and one GET per entry not yet read.

    Raises:
        IntegrityError: an entry is malformed, missing from the sequence, or publishes a
            turn twice.
        StorageError: a request failed.
    """
    if state is None:
        state = PublishedState(store.layout.prefix + PUBLISHED_DIR)
    numbers: list[int] = []
    async for page in store.list_pages(state.log_root):
        for obj in page.get("Contents", []):
            name = str(obj["Key"])[len(state.log_root) :]
            match = _ENTRY_NAME.fullmatch(name)
            if match is not None and int(match.group(1)) >= state.next_number:
                numbers.append(int(match.group(1)))
    numbers.sort()
    for number in numbers:
        key = state.log_root + entry_name(number)
        body = await get_bytes(store, key)
        if body is None:
            raise IntegrityError(f"publish log entry {key} vanished", key=key)
        state.add(LogEntry.parse(body, key=key, number=number))
    return state


async def get_bytes(store: S3EventStore, key: str) -> bytes | None:
    """GET a whole object; ``None`` when it does not exist.

    Raises:
        StorageError: the GET failed.
    """
    found = await store.objects.get(key)
    return None if found is None else found.body
