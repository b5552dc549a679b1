"""``export``: threads to a local JSON-lines or Parquet file."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
    plural,
    read_thread_ids,
    run,
    stdout_bytes,
    thread_ids_option,
    threads_not_found,
)
from s3_eventstore.ops.export import ExportResult, JsonLinesSink, ParquetSink, export_threads

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.ops.export import ExportSink

__all__ = ["export"]


@click.command()
@archive_options
@click.argument("thread", nargs=-1)
@thread_ids_option
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output file; '-' writes JSON lines to stdout.",
)
@click.option("--force", "-f", is_flag=True, help="Replace FILE if it exists.")
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
    force: bool,
    fmt: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Export THREAD(s), or every thread under the prefix, to JSON lines or Parquet.

    JSON lines: {"thread_id", "turn", "event"} per event, the event exactly as stored.
    Parquet (needs pyarrow): columns thread_id, turn, event_id, sequence, timestamp,
    type, fields (the event's own fields as JSON text) and envelope (the JSON line as
    stored). Every object is verified first. The file appears only when complete, and
    an existing FILE is replaced only with --force; a failed run leaves it as it was.
    Exits 3 if a named thread does not exist (the others are still exported; if none
    exists, FILE is not touched).

    \b
    Examples:
      s3-eventstore export --url s3://my-archive/agents/prod -o all.parquet
      s3-eventstore export THREAD_A THREAD_B -o two.jsonl --force
      s3-eventstore threads -0 | s3-eventstore export --threads-from - -o -
    """
    ids: list[str] | None = [*thread, *read_thread_ids(threads_from)] or None
    fmt = fmt or ("parquet" if output.endswith(".parquet") else "jsonl")
    if output == "-" and fmt != "jsonl":
        raise click.UsageError("only JSON lines can be written to stdout")
    if output != "-":
        _check_output(Path(output), force=force)
    result = _export(config, ids, output, fmt, quiet=quiet or output == "-")
    summary = {
        "output": output,
        "format": fmt,
        "threads": result.threads,
        "turns": result.turns,
        "events": result.events,
        "missing": result.missing,
        "written": result.written,
    }
    if as_json:
        click.echo(orjson.dumps(summary).decode(), err=output == "-")
    elif output != "-":
        if result.written:
            click.echo(
                f"exported {plural(result.events, 'event')} of {plural(result.turns, 'turn')} "
                f"in {plural(result.threads, 'thread')} to {output} ({fmt})"
            )
        else:
            click.echo(f"nothing exported; {output} left as it was", err=True)
    if result.missing:
        raise threads_not_found(result.missing)


def _check_output(path: Path, *, force: bool) -> None:
    """Refuse, before any request, what would fail late or destroy a file."""
    parent = path.parent
    if not parent.is_dir():
        raise fail(f"cannot write {str(path)!r}: no directory {str(parent)!r}", ExitCode.USAGE)
    if path.is_dir():
        raise fail(f"cannot write {str(path)!r}: it is a directory", ExitCode.USAGE)
    if path.exists() and not force:
        raise fail(f"{str(path)!r} exists: give --force to replace it", ExitCode.USAGE)
    if not os.access(parent, os.W_OK):
        raise fail(f"cannot write {str(path)!r}: directory not writable", ExitCode.USAGE)


class _Written:
    """An export's result plus whether the output file was put in place."""

    def __init__(self, result: ExportResult, *, written: bool) -> None:
        self.threads = result.threads
        self.turns = result.turns
        self.events = result.events
        self.missing = result.missing
        self.written = written


def _export(
    config: ArchiveConfig, ids: list[str] | None, output: str, fmt: str, *, quiet: bool
) -> _Written:
    if output == "-":
        with stdout_bytes() as out:
            return _Written(run(_write(config, ids, JsonLinesSink(out), quiet=quiet)), written=True)
    final = Path(output)
    # Our own temporary name in the same directory (so the rename is atomic): a user's
    # FILE.partial, or FILE itself, is never written over or deleted by a failed run.
    try:
        handle, name = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=".partial", dir=final.parent
        )
    except OSError as err:
        raise fail(f"cannot write {output!r}: {err.strerror}", ExitCode.USAGE) from None
    partial = Path(name)
    try:
        if fmt == "parquet":
            os.close(handle)
            sink: ExportSink = run(_parquet_sink(partial))
            result = run(_write(config, ids, sink, quiet=quiet))
        else:
            with os.fdopen(handle, "wb") as stream:
                result = run(_write(config, ids, JsonLinesSink(stream), quiet=quiet))
        if ids is not None and result.threads == 0:
            partial.unlink()  # every named thread is missing: leave FILE alone
            return _Written(result, written=False)
        os.replace(partial, final)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise fail(f"cannot write {output!r}: {err}", ExitCode.USAGE) from None
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return _Written(result, written=True)


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
