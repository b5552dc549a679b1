"""``export``: threads to a local JSON-lines or Parquet file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import (
    Progress,
    archive_options,
    fail,
    output_options,
    run,
    stdout_bytes,
)
from s3_eventstore.ops.export import ExportResult, JsonLinesSink, ParquetSink, export_threads

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.ops.export import ExportSink

__all__ = ["export"]


@click.command()
@archive_options
@click.argument("thread", nargs=-1)
@click.option(
    "--threads-from",
    type=click.File("r", encoding="utf-8"),
    help="Read thread ids from this file, one per line ('-' for stdin).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output file; '-' writes JSON lines to stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet"]),
    help="Output format; default: from the file name (.parquet), else jsonl.",
)
@output_options
def export(
    config: ArchiveConfig,
    thread: tuple[str, ...],
    threads_from: Any,
    output: str,
    fmt: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Export THREAD(s), or every thread under the prefix, to JSON lines or Parquet.

    JSON lines: {"thread_id", "turn", "event"} per event, the event exactly as stored.
    Parquet (needs pyarrow): columns thread_id, turn, event_id, sequence, timestamp,
    type, fields (the event's own fields as JSON text) and envelope (the JSON line as
    stored). Every object is verified first. The file appears only when complete.
    Exits 3 if a named thread does not exist (the others are still exported).

    \b
    Examples:
      s3-eventstore export --url s3://my-archive/agents/prod -o all.parquet
      s3-eventstore export THREAD_A THREAD_B -o two.jsonl
      s3-eventstore threads | grep ^0190 | s3-eventstore export --threads-from - -o -
    """
    ids: list[str] | None = list(thread)
    if threads_from is not None:
        assert ids is not None
        ids.extend(line.strip() for line in threads_from if line.strip())
    if not ids:
        ids = None
    fmt = fmt or ("parquet" if output.endswith(".parquet") else "jsonl")
    if output == "-" and fmt != "jsonl":
        raise click.UsageError("only JSON lines can be written to stdout")
    result = _export(config, ids, output, fmt, quiet=quiet or output == "-")
    summary = {
        "output": output,
        "format": fmt,
        "threads": result.threads,
        "turns": result.turns,
        "events": result.events,
        "missing": result.missing,
    }
    if as_json:
        click.echo(orjson.dumps(summary).decode(), err=output == "-")
    elif output != "-":
        click.echo(
            f"exported {result.events} events of {result.turns} turns in {result.threads} "
            f"threads to {output} ({fmt})"
        )
    if result.missing:
        names = ", ".join(repr(t) for t in result.missing)
        raise fail(f"thread(s) not found: {names}", ExitCode.NOT_FOUND)


def _export(
    config: ArchiveConfig, ids: list[str] | None, output: str, fmt: str, *, quiet: bool
) -> ExportResult:
    if output == "-":
        with stdout_bytes() as out:
            return run(_write(config, ids, JsonLinesSink(out), quiet=quiet))
    final = Path(output)
    partial = final.with_name(final.name + ".partial")
    try:
        if fmt == "parquet":
            sink: ExportSink = run(_parquet_sink(partial))
            result = run(_write(config, ids, sink, quiet=quiet))
        else:
            with partial.open("wb") as stream:
                result = run(_write(config, ids, JsonLinesSink(stream), quiet=quiet))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)
    return result


async def _parquet_sink(path: Path) -> ParquetSink:
    return ParquetSink(path)  # async only so that `run` maps ConfigurationError


async def _write(
    config: ArchiveConfig, ids: list[str] | None, sink: ExportSink, *, quiet: bool
) -> ExportResult:
    with Progress("exporting threads", total=len(ids) if ids else None, quiet=quiet) as bar:
        try:
            async with config.open_store() as store:
                return await export_threads(
                    store, sink, ids, progress=lambda _thread, _events: bar.advance()
                )
        finally:
            sink.close()
