"""``query``: SQL over the archive in place, with DuckDB."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import archive_options, fail, stdout_bytes
from s3_eventstore.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["query"]


@click.command()
@archive_options
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: aligned text; csv: with a header; json: one object per row.",
)
def query(config: ArchiveConfig, sql: str, fmt: str) -> None:
    """Run SQL over the archive with DuckDB; the view `events` is every archived event.

    Columns of `events`: thread_id, turn, event_id, sequence, timestamp (as written),
    time (TIMESTAMPTZ), type, event (JSON: event->'usage'->>'input_tokens'), line
    (the JSON line exactly as stored) and key. Nothing is copied out of S3 first.
    Needs the `analytics` extra (duckdb and duckdb-extension-httpfs). See docs/ANALYTICS.md.

    \b
    Examples:
      s3-eventstore query --url s3://my-archive/agents/prod \\
        "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC"
      s3-eventstore query --format json "SELECT thread_id,
        sum((event->'usage'->>'output_tokens')::BIGINT) AS output_tokens
        FROM events WHERE type = 'turn_complete' GROUP BY thread_id"
    """
    from s3_eventstore.ops import analytics

    try:
        connection = analytics.connect(
            config.url,
            endpoint_url=config.endpoint_url,
            region=config.region,
            profile=config.profile,
        )
    except ConfigurationError as err:
        raise fail(str(err), ExitCode.USAGE) from err
    except Exception as err:  # duckdb.Error: S3 unreachable or refused while binding the view
        raise fail(f"storage error: {err}", ExitCode.STORAGE) from err
    import duckdb

    try:
        cursor = connection.execute(sql)
        columns = [str(d[0]) for d in cursor.description or []]
        rows = cursor.fetchall()
    except (duckdb.IOException, duckdb.HTTPException) as err:
        raise fail(f"storage error: {err}", ExitCode.STORAGE) from err
    except duckdb.Error as err:
        raise fail(f"query failed: {err}", ExitCode.USAGE) from err
    finally:
        connection.close()
    with stdout_bytes() as out:
        out.write(_render(columns, rows, fmt).encode("utf-8"))


def _render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    if fmt == "json":
        return "".join(
            json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False) + "\n"
            for row in rows
        )
    if fmt == "csv":
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        return buffer.getvalue()
    cells = [list(columns)] + [["NULL" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})\n"
