"""Export archived events to local files: JSON lines or Parquet, lossless either way.

Rows are ``(thread_id, turn, event)``. JSON lines write each as
``{"thread_id": ..., "turn": ..., "event": <the envelope exactly as stored>}``: the
envelope's bytes are spliced in, not re-serialised, so nothing the producer wrote is
lost. Parquet (pyarrow, the ``parquet`` extra) has the columns of :data:`PARQUET_COLUMNS`:
the envelope keys as typed columns, the event's own fields as JSON text, and the whole
envelope line as written, because JSON text re-serialised by any tool may differ
(``1.0e5`` vs ``100000.0``) and an archive export must round-trip exactly.

pyarrow is imported only by :class:`ParquetSink`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import orjson

from s3_eventstore.errors import MissingExtraError
from s3_eventstore.ops.catalog import iter_threads, iter_turn_events

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable, Sequence

    from s3_eventstore.envelope import AgentEventEnvelope
    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "PARQUET_COLUMNS",
    "ExportResult",
    "ExportSink",
    "JsonLinesSink",
    "ParquetSink",
    "export_threads",
    "jsonl_record",
]

PARQUET_COLUMNS: Final = (
    ("thread_id", "string", "thread id, decoded"),
    ("turn", "uint64", "turn number"),
    ("event_id", "string", "envelope event_id (UUID text)"),
    ("sequence", "uint64", "envelope sequence (restarts every agent run)"),
    ("timestamp", "string", "envelope timestamp exactly as written (nanoseconds, offset)"),
    ("type", "string", "event type"),
    ("fields", "string", "the event's own fields as a JSON object (re-serialised)"),
    ("envelope", "string", "the whole JSON line exactly as stored (lossless)"),
)
"""Name, Arrow type and meaning of each Parquet column."""
_ROW_GROUP_ROWS: Final = 65_536


class ExportSink(Protocol):
    """Where exported turns go."""

    def write_turn(
        self, thread_id: str, turn: int, events: Sequence[AgentEventEnvelope]
    ) -> None: ...

    def close(self) -> None: ...


def jsonl_record(thread_id: str, turn: int, event: AgentEventEnvelope) -> bytes:
    """One JSON-lines row, the envelope's bytes spliced in unchanged."""
    head = orjson.dumps({"thread_id": thread_id, "turn": turn})
    return head[:-1] + b',"event":' + event.to_json() + b"}\n"


class JsonLinesSink:
    """Writes rows as JSON lines to a binary stream (a file, or stdout)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write_turn(self, thread_id: str, turn: int, events: Sequence[AgentEventEnvelope]) -> None:
        """Write one turn's rows."""
        self._stream.write(b"".join([jsonl_record(thread_id, turn, e) for e in events]))

    def close(self) -> None:
        """Flush (the stream belongs to the caller)."""
        self._stream.flush()


class ParquetSink:
    """Writes rows to a Parquet file in row groups of 64 Ki rows (bounded memory).

    Raises:
        MissingExtraError: pyarrow is not installed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:  # through importlib: pyarrow ships no type information
            pa: Any = importlib.import_module("pyarrow")
            pq: Any = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise MissingExtraError("Parquet export needs pyarrow", extra="parquet") from None
        self._pa = pa
        self._schema = pa.schema(
            [
                pa.field(name, getattr(pa, kind)(), nullable=False)
                for name, kind, _ in PARQUET_COLUMNS
            ]
        )
        self._writer = pq.ParquetWriter(os.fspath(path), self._schema, compression="zstd")
        self._columns: dict[str, list[Any]] = {name: [] for name, _, _ in PARQUET_COLUMNS}

    def write_turn(self, thread_id: str, turn: int, events: Sequence[AgentEventEnvelope]) -> None:
        """Buffer one turn's rows, writing a row group when enough have accumulated."""
        columns = self._columns
        for event in events:
            columns["thread_id"].append(thread_id)
            columns["turn"].append(turn)
            columns["event_id"].append(str(event.event_id))
            columns["sequence"].append(event.sequence)
            columns["timestamp"].append(event.timestamp)
            columns["type"].append(event.type)
            columns["fields"].append(event.fields_json().decode("utf-8"))
            columns["envelope"].append(event.to_json().decode("utf-8"))
        if len(columns["turn"]) >= _ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._columns["turn"]:
            return
        table = self._pa.Table.from_pydict(self._columns, schema=self._schema)
        self._writer.write_table(table)
        for values in self._columns.values():
            values.clear()

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._writer.close()


@dataclass(slots=True)
class ExportResult:
    """What :func:`export_threads` wrote."""

    threads: int = 0
    """Threads with at least one turn exported."""
    turns: int = 0
    """Turn objects exported."""
    events: int = 0
    """Rows written."""
    missing: list[str] = field(default_factory=list)
    """Requested threads that have no turn object."""


async def export_threads(
    store: S3EventStore,
    sink: ExportSink,
    thread_ids: Iterable[str] | None = None,
    *,
    progress: Callable[[str, int], None] | None = None,
) -> ExportResult:
    """Write every event of the given threads (all threads when ``None``) to ``sink``.

    Every object is verified before it is written out. ``progress`` is called after each
    thread with its id and the number of events written for it. The sink is not closed.

    Raises:
        InvalidThreadIdError: a bad thread id.
        IntegrityError: an object failed verification.
        StorageError: a request failed.
    """
    result = ExportResult()
    async for thread_id in _threads(store, thread_ids):
        written = 0
        turns = 0
        async for turn, events in iter_turn_events(store, thread_id):
            sink.write_turn(thread_id, turn, events)
            turns += 1
            written += len(events)
        if turns == 0:
            result.missing.append(thread_id)
        else:
            result.threads += 1
            result.turns += turns
            result.events += written
        if progress is not None:
            progress(thread_id, written)
    return result


async def _threads(store: S3EventStore, thread_ids: Iterable[str] | None) -> AsyncIterator[str]:
    if thread_ids is None:
        async for thread_id in iter_threads(store):
            yield thread_id
        return
    for thread_id in thread_ids:
        yield thread_id
