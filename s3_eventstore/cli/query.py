"""``query``: SQL over the archive in place, with DuckDB."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import archive_options, fail, plural, printable, stdout_bytes
from s3_eventstore.errors import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["query"]


@click.command()
@archive_options
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one object per row.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    hidden=True,
    help="Same as --json / --csv (kept for scripts written against it).",
)
def query(config: ArchiveConfig, sql: str, as_json: bool, as_csv: bool, fmt: str | None) -> None:
    """Run SQL over the archive with DuckDB; the view `events` is every archived event.

    Columns of `events`: thread_id, turn, event_id, sequence, timestamp (as written),
    time (TIMESTAMPTZ), type, event (JSON: event->'usage'->>'input_tokens'), line
    (the JSON line exactly as stored) and key. Nothing is copied out of S3 first.
    Output: an aligned table (control characters escaped), --json (JSON lines, one
    object per row) or --csv. Needs the `analytics` extra (duckdb and
    duckdb-extension-httpfs; exit 6 without it). See docs/ANALYTICS.md.

    \b
    Examples:
      s3-eventstore query --url s3://my-archive/agents/prod \\
        "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC"
      s3-eventstore query --json "SELECT thread_id,
        sum((event->'usage'->>'output_tokens')::BIGINT) AS output_tokens
        FROM events WHERE type = 'turn_complete' GROUP BY thread_id"
    """
    chosen = {name for name, on in (("json", as_json), ("csv", as_csv)) if on}
    if fmt is not None and fmt != "table":
        chosen.add(fmt)
    if len(chosen) > 1:
        raise click.UsageError("choose one output format: --json or --csv")
    fmt = chosen.pop() if chosen else "table"
    from s3_eventstore.ops import analytics

    try:
        connection = analytics.connect(
            config.url,
            endpoint_url=config.endpoint_url,
            region=config.region,
            profile=config.profile,
        )
    except MissingExtraError as err:
        raise fail(str(err), ExitCode.MISSING_EXTRA) from err
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
    cells = [[printable(c) for c in columns]]
    cells += [["NULL" if v is None else printable(str(v)) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + f"\n({plural(len(rows), 'row')})\n"
