"""The columns of the Parquet tier, and how one archived event becomes one row.

Every typed column is derived by this library from its own parse of the envelope
(:class:`~s3_eventstore.envelope.AgentEventEnvelope`), for the published files and for
turns not yet published alike, so the ``events`` view and the Python API can never read
an event two ways. ``envelope`` keeps the JSON line exactly as stored.

pyarrow is imported inside the functions: ``import s3_eventstore`` must stay light.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from s3_eventstore.envelope import AgentEventEnvelope

__all__ = [
    "COLUMNS",
    "PARTITION_COLUMN",
    "Column",
    "TurnRows",
    "arrow_schema",
    "partition_day",
    "turn_rows",
]

PARTITION_COLUMN: Final = "day"
"""Hive partition folder ``day=YYYY-MM-DD``: the UTC date of the turn's last event."""

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the Parquet tier, as Parquet, Glue and the docs name it."""

    name: str
    """Column name."""
    glue_type: str
    """Hive/Glue type (what Athena and Spark see)."""
    comment: str
    """What the column holds."""


COLUMNS: Final[tuple[Column, ...]] = (
    Column("thread_id", "string", "Thread id (decoded, as given to append)"),
    Column("turn", "decimal(20,0)", "Turn number (u64); filled for compacted turns too"),
    Column("position", "int", "0-based position of the event in its turn (append order)"),
    Column("event_id", "string", "UUID of the event"),
    Column("sequence", "decimal(20,0)", "sequence (u64; restarts every agent run)"),
    Column("timestamp", "timestamp", "timestamp as a UTC instant, nanoseconds"),
    Column("timestamp_text", "string", "timestamp exactly as written (offset and digits kept)"),
    Column("type", "string", "Event type tag"),
    Column("message_id", "string", "message_id (string) on message events, else NULL"),
    Column("tool_name", "string", "name (string) on tool_* events, else NULL"),
    Column("tool_call_id", "string", "id (string) on tool_* events, else NULL"),
    Column("input_tokens", "bigint", "usage.input_tokens (int64) on turn events, else NULL"),
    Column("output_tokens", "bigint", "usage.output_tokens (int64), else NULL"),
    Column("cached_input_tokens", "bigint", "usage.cached_input_tokens (int64), else NULL"),
    Column("cache_creation_input_tokens", "bigint", "usage.cache_creation_input_tokens, else NULL"),
    Column(
        "error_message",
        "string",
        "message of error events, error_message of auto_retry_start, final_error of "
        "auto_retry_end (strings), else NULL",
    ),
    Column("envelope", "string", "The JSON line exactly as stored (lossless)"),
)
"""The file columns, in file order. The partition column ``day`` is in the path only."""

_USAGE_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
)
_ERROR_FIELDS: Final = {
    "error": "message",
    "auto_retry_start": "error_message",
    "auto_retry_end": "final_error",
}


def arrow_schema(*, naive_timestamp: bool = False) -> pa.Schema:
    """The Parquet schema (``naive_timestamp``: ``timestamp`` without its UTC zone, the
    form the DuckDB view reads so that nanoseconds survive and no ``pytz`` is needed)."""
    import pyarrow as pa

    decimal = pa.decimal128(20, 0)
    timestamp = pa.timestamp("ns") if naive_timestamp else pa.timestamp("ns", tz="UTC")
    types: dict[str, pa.DataType] = {
        "turn": decimal,
        "position": pa.int32(),
        "sequence": decimal,
        "timestamp": timestamp,
        "input_tokens": pa.int64(),
        "output_tokens": pa.int64(),
        "cached_input_tokens": pa.int64(),
        "cache_creation_input_tokens": pa.int64(),
    }
    fields = [
        pa.field(c.name, types.get(c.name, pa.string()), nullable=c.name not in _REQUIRED)
        for c in COLUMNS
    ]
    return pa.schema(fields)


_REQUIRED: Final = frozenset(
    {"thread_id", "turn", "position", "event_id", "sequence", "timestamp_text", "type", "envelope"}
)


def partition_day(events: Sequence[AgentEventEnvelope]) -> str:
    """``YYYY-MM-DD``: UTC date of the turn's last event (``1970-01-01`` for an empty turn,
    which has no rows anyway)."""
    if not events:
        return "1970-01-01"
    nanos = events[-1].timestamp_ns
    return datetime.fromtimestamp(nanos // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")


@dataclass(slots=True)
class TurnRows:
    """The rows of one or more turns, column by column (pyarrow-ready lists)."""

    columns: dict[str, list[Any]]
    raw_bytes: int = 0
    """JSON bytes held (what the writer sizes row groups by)."""

    @classmethod
    def empty(cls) -> TurnRows:
        """No rows yet."""
        return cls({c.name: [] for c in COLUMNS})

    def __len__(self) -> int:
        return len(self.columns["envelope"])

    def to_arrow(self, *, naive_timestamp: bool = False) -> pa.Table:
        """The rows as a pyarrow table of :func:`arrow_schema`."""
        import pyarrow as pa

        return pa.table(self.columns, schema=arrow_schema(naive_timestamp=naive_timestamp))


def turn_rows(
    thread_id: str, turn: int, events: Sequence[AgentEventEnvelope], into: TurnRows
) -> None:
    """Append one row per event of ``(thread_id, turn)`` to ``into``."""
    from decimal import Decimal

    columns = into.columns
    turn_decimal = Decimal(turn)
    for position, event in enumerate(events):
        raw = event.to_json()
        data = event.to_dict()  # the library's exact parse (wide integers, last key wins)
        event_type = event.type
        columns["thread_id"].append(thread_id)
        columns["turn"].append(turn_decimal)
        columns["position"].append(position)
        columns["event_id"].append(str(data["event_id"]))
        columns["sequence"].append(Decimal(event.sequence))
        columns["timestamp"].append(event.timestamp_ns)
        columns["timestamp_text"].append(event.timestamp)
        columns["type"].append(event_type)
        columns["message_id"].append(_string(data.get("message_id")))
        is_tool = event_type.startswith("tool_")
        columns["tool_name"].append(_string(data.get("name")) if is_tool else None)
        columns["tool_call_id"].append(_string(data.get("id")) if is_tool else None)
        usage = data.get("usage")
        for key in _USAGE_KEYS:
            columns[key].append(_int64(usage.get(key)) if isinstance(usage, dict) else None)
        error_field = _ERROR_FIELDS.get(event_type)
        columns["error_message"].append(_string(data.get(error_field)) if error_field else None)
        columns["envelope"].append(raw.decode("utf-8"))
        into.raw_bytes += len(raw) + 1


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int64(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None
