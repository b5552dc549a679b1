"""``publish``: build the Parquet tier from the archive, incrementally and crash-safely.

One run: read the commit log; LIST ``threads/`` for turns the log does not name; read
them through the store (one GET per turn object or segment); write Parquet files,
partitioned by day, to a local temporary folder; PUT each under a fresh random name with
``If-None-Match: *``; then commit a log entry naming the files and the turns they hold,
also with ``If-None-Match: *``. Readers use only files a committed entry names, so a run
killed at any step leaves nothing visible: its uploaded files are orphans, deleted by a
later run once older than ``gc_grace``. The protocol is specified in docs/FORMAT.md,
section 10.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import (
    ConfigurationError,
    MissingExtraError,
    PreconditionFailedError,
    StorageError,
)
from s3_eventstore.ops.columnar.log import (
    LogEntry,
    PublishedFile,
    PublishedState,
    PublishedTurn,
    entry_name,
    read_state,
)
from s3_eventstore.ops.columnar.pending import ReadTurn, find_pending, read_pending
from s3_eventstore.ops.columnar.schema import (
    COLUMNS,
    TurnRows,
    arrow_schema,
    partition_day,
    turn_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow.parquet as pq

    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "DEFAULT_GC_GRACE_SECONDS",
    "DEFAULT_TARGET_FILE_BYTES",
    "MAX_BATCH_SECONDS",
    "PublishReport",
    "collect_garbage",
    "publish",
]

logger = logging.getLogger("s3_eventstore")

DEFAULT_TARGET_FILE_BYTES: Final = 128 << 20
"""A data file is closed once it reaches this size (engines like 64-512 MiB files)."""
DEFAULT_COMMIT_RAW_BYTES: Final = 4 << 30
"""JSON bytes read before a commit: bounds the work a crash can lose and each run's age."""
MAX_BATCH_SECONDS: Final = 3600.0
"""A publisher does not commit a batch whose first read is older than this: it deletes
its files and starts the batch again, so a collector never deletes files that are about
to be committed."""
DEFAULT_GC_GRACE_SECONDS: Final = 4 * MAX_BATCH_SECONDS
"""Uncommitted files younger than this are left alone by ``publish``'s collection."""
_ROW_GROUP_RAW_BYTES: Final = 32 << 20
_COMMIT_ATTEMPTS: Final = 8
_PARQUET_TYPE: Final = "application/vnd.apache.parquet"
_PLAIN_COLUMNS: Final = ("event_id", "timestamp_text", "envelope", "timestamp")
"""Unique per row: dictionary encoding would only cost."""


@dataclass(slots=True)
class PublishReport:
    """What one ``publish`` did."""

    turns: int = 0
    """Turns published by this run."""
    events: int = 0
    """Rows written."""
    files: list[str] = field(default_factory=list)
    """Keys of the data files committed by this run."""
    bytes_written: int = 0
    """Bytes of those files."""
    commits: list[int] = field(default_factory=list)
    """Numbers of the log entries this run wrote."""
    retries: int = 0
    """Batches started again because another publisher committed the same turns first."""
    garbage_deleted: list[str] = field(default_factory=list)
    """Orphaned files deleted (left by killed or losing publishers)."""
    open_turns: int = 0
    """Open (persisted, unfinished) turns seen and left for a run after they finish."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "turns": self.turns,
            "events": self.events,
            "files": list(self.files),
            "bytes_written": self.bytes_written,
            "commits": list(self.commits),
            "retries": self.retries,
            "garbage_deleted": list(self.garbage_deleted),
            "open_turns": self.open_turns,
        }


class _Restart(Exception):
    """Another publisher committed some of this batch's turns: read the log again."""


async def publish(
    store: S3EventStore,
    *,
    target_file_bytes: int = DEFAULT_TARGET_FILE_BYTES,
    commit_raw_bytes: int = DEFAULT_COMMIT_RAW_BYTES,
    gc_grace_seconds: float = DEFAULT_GC_GRACE_SECONDS,
    on_step: Callable[[str], None] | None = None,
) -> PublishReport:
    """Publish every finished turn not yet in the Parquet tier.

    Idempotent (a second run publishes nothing new), safe to run concurrently (each
    (thread, turn) is committed once; the loser of a race redoes its batch) and
    crash-safe (see the module docstring). Costs one LIST of the log plus one GET per log
    entry not yet read, one LIST of ``threads/``, one GET per unpublished turn object or
    segment (a thread with an unpublished segment is read whole: one GET per object of
    that thread), one PUT per data file and one per commit, and one LIST of the data
    folder for the garbage collection.

    Args:
        store: The archive.
        target_file_bytes: Close a data file at this size (at least 1 MiB). Small archives
            give smaller files; a file is never split inside a turn.
        commit_raw_bytes: Commit after reading this many JSON bytes, then go on.
        gc_grace_seconds: Age after which an uncommitted data file is garbage (at least
            twice :data:`MAX_BATCH_SECONDS`).
        on_step: Called with ``"uploaded"`` after each data file PUT and ``"committed"``
            after each commit (tests use it to kill the run at each step).

    Raises:
        ConfigurationError: pyarrow is missing, or a size is out of range.
        IntegrityError: an archived object failed verification, or the log is corrupt.
        StorageError: a request failed.
    """
    if target_file_bytes < (1 << 20) or commit_raw_bytes < 1:
        raise ConfigurationError("target_file_bytes must be at least 1 MiB")
    if gc_grace_seconds < 2 * MAX_BATCH_SECONDS:
        raise ConfigurationError(
            f"gc_grace_seconds must be at least {2 * MAX_BATCH_SECONDS:.0f}: a live publisher "
            "may still commit younger files (collect_garbage takes any grace when none runs)"
        )
    _require_pyarrow()
    report = PublishReport()
    state = await read_state(store)
    for _ in range(_COMMIT_ATTEMPTS * 4):
        try:
            await _publish_pending(
                store, state, report, target_file_bytes, commit_raw_bytes, on_step
            )
            break
        except _Restart:
            report.retries += 1
            state = await read_state(store, state)
    else:  # pragma: no cover - needs a publisher losing every race
        raise StorageError("publish kept losing commits to other publishers", operation="publish")
    report.garbage_deleted = await collect_garbage(store, gc_grace_seconds, state)
    return report


async def _publish_pending(
    store: S3EventStore,
    state: PublishedState,
    report: PublishReport,
    target_file_bytes: int,
    commit_raw_bytes: int,
    on_step: Callable[[str], None] | None,
) -> None:
    report.open_turns = 0  # counted again when a lost race restarts the run
    pending = await find_pending(store, state)
    if not pending:
        return
    segments_of = {p.thread_id: p.segments for p in pending}
    batch = _Batch(target_file_bytes)
    try:
        async for read in read_pending(store, pending, state, include_open=True):
            if not read.finished:  # never published: the run after its finish takes it
                report.open_turns += 1
                continue
            batch.add(read, segments_of.get(read.thread_id, []))
            if batch.raw_bytes >= commit_raw_bytes:
                await _commit(store, state, batch, report, on_step)
                batch.close()
                batch = _Batch(target_file_bytes)
        # Every pending segment's thread has been read whole by now: record them all, so
        # that segments holding only published turns are not read again.
        batch.segments.update(s for p in pending for s in p.segments)
        await _commit(store, state, batch, report, on_step)
    finally:
        batch.close()


class _Batch:
    """Turns read for one commit, written to local Parquet files as they arrive."""

    def __init__(self, target_file_bytes: int) -> None:
        self.target_file_bytes = target_file_bytes
        self.folder = tempfile.TemporaryDirectory(prefix="s3es-publish-")
        self.turns: list[tuple[ReadTurn, str | None]] = []  # (turn, file name)
        self.segments: set[str] = set()
        self.raw_bytes = 0
        self.started = time.monotonic()
        self._buffers: dict[str, tuple[str, TurnRows]] = {}  # day -> (file name, rows)
        self._writers: dict[str, pq.ParquetWriter] = {}  # file name -> writer
        self._sinks: dict[str, Any] = {}  # file name -> pyarrow.OSFile (unbuffered)
        self.closed_files: dict[str, tuple[str, int]] = {}  # file name -> (day, rows)
        self._rows: dict[str, int] = {}

    def add(self, read: ReadTurn, segments: list[str]) -> None:
        self.segments.update(segments)
        if not read.events:
            self.turns.append((read, None))
            return
        day = partition_day(read.events)
        if day not in self._buffers:
            self._buffers[day] = (self._new_name(day), TurnRows.empty())
        name, rows = self._buffers[day]
        turn_rows(read.thread_id, read.turn, read.events, rows)
        self.turns.append((read, name))
        self.raw_bytes += sum(e.wire_size + 1 for e in read.events)
        if rows.raw_bytes >= min(_ROW_GROUP_RAW_BYTES, self.target_file_bytes):
            self._flush(day)

    def _new_name(self, day: str) -> str:
        return f"day={day}/part-{uuid.uuid4().hex}.parquet"

    def _flush(self, day: str) -> None:
        import pyarrow.parquet as pq

        name, rows = self._buffers[day]
        if not len(rows):
            return
        writer = self._writers.get(name)
        path = self._path(name)
        if writer is None:
            import pyarrow as pa

            path.parent.mkdir(parents=True, exist_ok=True)
            self._sinks[name] = pa.OSFile(str(path), "wb")
            writer = pq.ParquetWriter(
                self._sinks[name],
                arrow_schema(),
                compression="zstd",
                use_dictionary=[c.name for c in COLUMNS if c.name not in _PLAIN_COLUMNS],
                write_statistics=True,
            )
            self._writers[name] = writer
        writer.write_table(rows.to_arrow(), row_group_size=len(rows))
        self._rows[name] = self._rows.get(name, 0) + len(rows)
        self._buffers[day] = (name, TurnRows.empty())
        if self._sinks[name].tell() >= self.target_file_bytes:
            self._close_file(name, day)
            self._buffers[day] = (self._new_name(day), TurnRows.empty())

    def _close_file(self, name: str, day: str) -> None:
        self._writers.pop(name).close()
        self._sinks.pop(name).close()
        self.closed_files[name] = (day, self._rows.get(name, 0))

    def _path(self, name: str) -> Path:
        return Path(self.folder.name) / name

    def finish(self) -> dict[str, tuple[str, int]]:
        """Flush and close every file: ``name -> (day, rows)``."""
        for day in list(self._buffers):
            self._flush(day)
            name = self._buffers[day][0]
            if name in self._writers:
                self._close_file(name, day)
        self._buffers.clear()
        return self.closed_files

    def body(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        for sink in self._sinks.values():
            sink.close()
        self._writers.clear()
        self._sinks.clear()
        self.folder.cleanup()


async def _commit(
    store: S3EventStore,
    state: PublishedState,
    batch: _Batch,
    report: PublishReport,
    on_step: Callable[[str], None] | None,
) -> None:
    if not batch.turns and not batch.segments:
        return
    wanted = {(read.thread_id, read.turn) for read, _ in batch.turns}
    if state.overlaps(wanted):
        raise _Restart
    files = batch.finish()
    order = sorted(files)
    uploaded: list[PublishedFile] = []
    for name in order:
        body = batch.body(name)
        key = state.root + name
        await _put(store, key, body, _PARQUET_TYPE)
        uploaded.append(PublishedFile(name, files[name][1], len(body)))
        if on_step is not None:
            on_step("uploaded")
    position = {name: i for i, name in enumerate(order)}
    entry_turns = tuple(
        PublishedTurn(
            read.thread_id,
            read.turn,
            len(read.events),
            read.sha256,
            None if name is None else position[name],
        )
        for read, name in batch.turns
    )
    for _ in range(_COMMIT_ATTEMPTS):
        if time.monotonic() - batch.started > MAX_BATCH_SECONDS:
            # A collector may already be deleting these files: do not name them.
            await _delete(store, [state.root + f.key for f in uploaded])
            raise _Restart
        entry = LogEntry(
            state.next_number,
            tuple(uploaded),
            entry_turns,
            tuple(sorted(batch.segments - state.segments)),
            writer=uuid.uuid4().hex,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )
        key = state.log_root + entry_name(entry.number)
        if await _put(store, key, entry.render(), "application/json"):
            state.add(entry)
            report.commits.append(entry.number)
            report.turns += len(entry_turns)
            report.events += sum(t.events for t in entry_turns)
            report.files.extend(state.root + f.key for f in uploaded)
            report.bytes_written += sum(f.size for f in uploaded)
            if on_step is not None:
                on_step("committed")
            return
        await read_state(store, state)  # someone else took this number: catch up
        if state.overlaps(wanted):
            await _delete(store, [state.root + f.key for f in uploaded])
            raise _Restart
    raise _Restart


async def _put(store: S3EventStore, key: str, body: bytes, content_type: str) -> bool:
    """PUT with ``If-None-Match: *``; ``False`` when the key exists already."""
    try:
        await store.objects.put(key, body, mode="create", content_type=content_type)
    except PreconditionFailedError:
        return False
    return True


async def _delete(store: S3EventStore, keys: list[str]) -> None:
    if keys:
        await store.objects.delete_keys(keys)


async def collect_garbage(
    store: S3EventStore, grace_seconds: float, state: PublishedState | None = None
) -> list[str]:
    """Delete data files that no committed entry names and that are older than
    ``grace_seconds``; return their keys. Costs one LIST per 1000 objects of the tier
    (plus reading the log when no ``state`` is given) and one DeleteObjects per 1000 keys.

    Raises:
        IntegrityError: the log is corrupt.
        StorageError: a request failed.
    """
    if state is None:
        state = await read_state(store)
    else:
        await read_state(store, state)  # files committed by others since: never garbage
    now = time.time()
    garbage: list[str] = []
    async for page in store.objects.list_objects(state.root):
        for obj in page:
            if obj.key.startswith(state.log_root) or obj.key in state.files:
                continue
            if not obj.key.endswith(".parquet"):
                continue
            age = 0.0 if obj.last_modified is None else now - obj.last_modified
            if age >= grace_seconds:
                garbage.append(obj.key)
    if garbage:
        await read_state(store, state)  # a last look: a commit may have landed meanwhile
        garbage = [key for key in garbage if key not in state.files]
        await _delete(store, garbage)
    return garbage


def _require_pyarrow() -> None:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingExtraError("publish needs pyarrow", extra="analytics") from None
