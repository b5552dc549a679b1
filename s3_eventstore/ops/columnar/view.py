"""The ``events`` view over both tiers: published Parquet plus the turns not yet published.

* **Published rows** come from the data files the commit log names — an exact list of
  keys handed to pyarrow's S3 filesystem (no globbing, so no prefix can match another
  prefix's objects, and uncommitted or orphaned files are never read). DuckDB scans the
  pyarrow dataset with projection pushdown: a query reads only the columns it uses.
* **Pending rows** are the turns the log does not name, read and verified through the
  store (one GET per turn object or segment) and converted by the same code that
  writes the Parquet files, so both halves read every event the same way.

Each (thread, turn) is in exactly one half: the log names it, or it is pending.
Open (persisted, unfinished) turns are pending by construction (``publish`` never
publishes one): they are in the view with ``finished = false``, as they were persisted
when ``connect`` read them; every other row has ``finished = true``. A compaction stub
stands for its turn: the turn is read from its segment, with its own turn number.

DuckDB itself gets no file system and no credentials: the connection runs with
``enable_external_access = false`` (no local files, no httpfs, no extension loading),
with ``lock_configuration`` on, and the S3 credentials live only in the pyarrow file
system object in this process. ``allow_local_files=True`` keeps DuckDB's local file
access (``read_csv('x.csv')``, ``COPY ... TO``) for a trusted user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import MissingExtraError
from s3_eventstore.ops.columnar.log import PublishedState, read_state
from s3_eventstore.ops.columnar.pending import find_pending, read_pending
from s3_eventstore.ops.columnar.schema import (
    COLUMNS,
    PARTITION_COLUMN,
    TurnRows,
    arrow_schema,
    partition_day,
    turn_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads

    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "FINISHED_COLUMN",
    "PENDING_RELATION",
    "PUBLISHED_RELATION",
    "TierSnapshot",
    "events_view_sql",
    "open_events",
]

PUBLISHED_RELATION: Final = "events_published"
"""The registered relation over the committed Parquet files."""
PENDING_RELATION: Final = "events_pending"
"""The registered relation over the turns not yet published."""
FINISHED_COLUMN: Final = "finished"
"""Whether the row's turn is finished (only pending rows can be ``false``)."""


@dataclass(frozen=True, slots=True)
class TierSnapshot:
    """What one ``connect`` read: the committed files and the pending rows."""

    files: tuple[tuple[str, int], ...]
    """``(bucket/key, size)`` of each committed data file."""
    root: str
    """``bucket/key`` of the tier's folder (the files' partition base), no trailing slash."""
    pending: TurnRows
    """Rows of the turns not yet published."""
    pending_turns: int
    """How many turns those rows come from."""
    open_turns: int = 0
    """How many of them are open (their rows have ``finished = false``)."""


async def snapshot(store: S3EventStore, *, published_only: bool = False) -> TierSnapshot:
    """Read the log and every pending turn (one consistent cut: a turn committed while the
    pending turns are read is taken from the log's earlier state, i.e. as pending).
    Open turns are pending rows with ``finished = false``. ``published_only`` skips the
    pending turns (and the LIST that finds them).

    Raises:
        IntegrityError: the log is corrupt or an object failed verification.
        StorageError: a request failed.
    """
    state: PublishedState = await read_state(store, files_only=published_only)
    rows = TurnRows.empty()
    days: list[str] = []
    finished: list[bool] = []
    turns = open_turns = 0
    pending = [] if published_only else await find_pending(store, state)
    async for read in read_pending(store, pending, state, include_open=True):
        before = len(rows)
        turn_rows(read.thread_id, read.turn, read.events, rows)
        days.extend([partition_day(read.events)] * (len(rows) - before))
        finished.extend([read.finished] * (len(rows) - before))
        turns += 1
        open_turns += not read.finished
    rows.columns[PARTITION_COLUMN] = days
    rows.columns[FINISHED_COLUMN] = finished
    files = tuple((f"{store.bucket}/{key}", item.size) for key, item in state.files.items())
    root = f"{store.bucket}/{state.root}".rstrip("/")
    return TierSnapshot(files, root, rows, turns, open_turns)


def events_view_sql() -> str:
    """The ``SELECT`` behind the view, over the two registered relations."""
    names = [c.name for c in COLUMNS]
    casts = {
        "turn": "CAST(turn AS UBIGINT) AS turn",
        "sequence": "CAST(sequence AS UBIGINT) AS sequence",
    }
    columns = ", ".join(casts.get(name, _quote(name)) for name in [*names, PARTITION_COLUMN])
    event = "CAST(envelope AS JSON) AS event"
    return (
        f"SELECT {columns}, {event}, true AS {FINISHED_COLUMN} FROM {PUBLISHED_RELATION} "
        f"UNION ALL SELECT {columns}, {event}, {FINISHED_COLUMN} FROM {PENDING_RELATION}"
    )


def open_events(
    open_store: Callable[[], S3EventStore],
    filesystem: Any,
    *,
    view: str,
    database: str = ":memory:",
    allow_local_files: bool = False,
    published_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection whose ``view`` is every event of the store that
    ``open_store`` opens (the store is used, then closed, before this returns).

    Raises:
        ConfigurationError: duckdb or pyarrow is missing.
        IntegrityError: the log is corrupt or an object failed verification.
        StorageError: a request failed.
    """
    try:
        import duckdb
        import pyarrow  # noqa: F401
    except ImportError as err:
        raise MissingExtraError(
            f"analytics needs duckdb and pyarrow ({err.name} is missing)", extra="analytics"
        ) from None

    async def read() -> TierSnapshot:
        async with open_store() as store:
            return await snapshot(store, published_only=published_only)

    taken: TierSnapshot = _run(read())
    connection = duckdb.connect(database)
    try:
        for setting in ("autoinstall_known_extensions", "autoload_known_extensions"):
            connection.execute(f"SET {setting} = false")
        if not allow_local_files:
            connection.execute("SET enable_external_access = false")
        connection.register(
            PUBLISHED_RELATION, _published_dataset(taken.files, taken.root, filesystem)
        )
        connection.register(PENDING_RELATION, _pending_table(taken.pending))
        connection.execute(f"CREATE OR REPLACE TEMP VIEW {_quote(view)} AS {events_view_sql()}")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection


def _published_dataset(
    files: tuple[tuple[str, int], ...], root: str, filesystem: Any
) -> pads.Dataset:
    """The committed files as one dataset. Each fragment is made with its size from the
    log and its ``day`` from its key, so opening the dataset costs no request (no HEAD, no
    LIST); a scan reads each file's footer, then only the column chunks it needs (ranged
    GETs)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = arrow_schema(naive_timestamp=True).append(pa.field(PARTITION_COLUMN, pa.string()))
    if not files:
        return ds.dataset(pa.table({f.name: pa.array([], f.type) for f in schema}, schema=schema))
    parquet = ds.ParquetFileFormat()
    partitioning = ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")
    fragments = [
        parquet.make_fragment(
            path,
            filesystem,
            partition_expression=partitioning.parse(path[len(root) :].rpartition("/")[0]),
            file_size=size,
        )
        for path, size in files
    ]
    return ds.FileSystemDataset(fragments, schema, parquet, filesystem)


def _pending_table(rows: TurnRows) -> pa.Table:
    import pyarrow as pa

    schema = (
        arrow_schema(naive_timestamp=True)
        .append(pa.field(PARTITION_COLUMN, pa.string()))
        .append(pa.field(FINISHED_COLUMN, pa.bool_(), nullable=False))
    )
    return pa.table(rows.columns, schema=schema)


def _run(coroutine: Any) -> Any:
    """Run a coroutine to completion, also from inside a running event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
