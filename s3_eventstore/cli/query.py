"""``query``: SQL over the archive with DuckDB (both tiers, see s3_eventstore.ops.analytics)."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING, Any, Final

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import archive_options, fail, plural, printable, stdout_bytes
from s3_eventstore.errors import (
    ConfigurationError,
    EventStoreError,
    IntegrityError,
    InvalidInputError,
    MissingExtraError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["query"]

_MAX_MESSAGE: Final = 400
"""Characters of an error message shown: an event quoted by an error is not echoed whole."""


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
@click.option(
    "--allow-local-files",
    is_flag=True,
    help="Let the SQL read and write local files (off by default: trusted users only).",
)
@click.option(
    "--published-only",
    is_flag=True,
    help="Read the Parquet tier alone (no LIST of turn objects; unpublished turns missing).",
)
def query(
    config: ArchiveConfig,
    sql: str,
    as_json: bool,
    as_csv: bool,
    fmt: str | None,
    allow_local_files: bool,
    published_only: bool,
) -> None:
    """Run SQL over the archive with DuckDB; the view `events` is every archived event.

    `events` is the Parquet tier written by `publish` plus every turn not published yet,
    each turn exactly once (an open turn's rows have finished = false). Columns:
    thread_id, turn, position, event_id,
    sequence, timestamp (UTC, ns), timestamp_text (as written), type, message_id,
    tool_name, tool_call_id, input_tokens, output_tokens, cached_input_tokens,
    cache_creation_input_tokens, error_message, envelope (the JSON line as stored), day,
    event (JSON), finished. The SQL cannot read local files or credentials unless
    --allow-local-files. Output: an aligned table (control characters escaped), --json
    (JSON lines, one object per row) or --csv. Needs the `analytics` extra. Exit codes:
    2 bad SQL, 5 storage, 6 extra missing, 7 the query failed while running.
    See docs/ANALYTICS.md.

    \b
    Examples:
      s3-eventstore query --url s3://my-archive/agents/prod \\
        "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY n DESC"
      s3-eventstore query --json "SELECT thread_id,
        sum(input_tokens + output_tokens) AS tokens
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
            allow_local_files=allow_local_files,
            published_only=published_only,
        )
    except MissingExtraError as err:
        raise fail(str(err), ExitCode.MISSING_EXTRA) from err
    except (ConfigurationError, InvalidInputError) as err:
        raise fail(_short(err), ExitCode.USAGE) from err
    except IntegrityError as err:
        raise fail(f"integrity check failed: {_short(err)}", ExitCode.INTEGRITY) from err
    except EventStoreError as err:
        raise fail(f"storage error: {_short(err)}", ExitCode.STORAGE) from err
    import duckdb

    try:
        cursor = connection.execute(sql)
        columns = [str(d[0]) for d in cursor.description or []]
        rows = cursor.fetchall()
    except (duckdb.IOException, duckdb.HTTPException) as err:
        raise fail(f"storage error: {_short(err)}", ExitCode.STORAGE) from err
    except (
        duckdb.ParserException,
        duckdb.SyntaxException,
        duckdb.BinderException,
        duckdb.CatalogException,
        duckdb.PermissionException,
    ) as err:
        hint = "" if allow_local_files else " (local files need --allow-local-files)"
        extra = hint if isinstance(err, duckdb.PermissionException) else ""
        raise fail(f"bad query: {_short(err)}{extra}", ExitCode.USAGE) from err
    except duckdb.Error as err:
        if "configuration has been locked" in str(err):
            raise fail(f"bad query: {_short(err)}", ExitCode.USAGE) from err
        raise fail(f"query failed: {_short(err)}", ExitCode.QUERY) from err
    finally:
        connection.close()
    with stdout_bytes() as out:
        out.write(_render(columns, rows, fmt).encode("utf-8"))


def _short(err: BaseException) -> str:
    message = str(err)
    if len(message) <= _MAX_MESSAGE:
        return message
    return message[:_MAX_MESSAGE] + f"... ({len(message) - _MAX_MESSAGE} more characters)"


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
