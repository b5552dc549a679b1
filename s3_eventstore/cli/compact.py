"""``compact`` and ``train-dictionary``: the archive-economics commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import orjson

from s3_eventstore.cli.options import archive_options, run

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["compact", "train_dictionary"]


@click.command()
@archive_options
@click.argument("threads", nargs=-1)
@click.option(
    "--idle-for",
    type=float,
    help="Compact every thread with no object written for this many seconds.",
)
@click.option("--max-segment-mib", default=16, show_default=True, help="Largest segment, in MiB.")
@click.option(
    "--min-turns", default=2, show_default=True, help="Leave runs shorter than this alone."
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def compact(
    config: ArchiveConfig,
    threads: tuple[str, ...],
    idle_for: float | None,
    max_segment_mib: int,
    min_turns: int,
    as_json: bool,
) -> None:
    """Merge finished turn objects of THREADS into segment objects.

    Fewer, larger objects: cheaper archive classes, one GET per segment to read a
    thread, event counts from the LIST alone. Compact idle threads only: a worker that
    finishes an already-compacted turn later makes a conflicting second copy.

    \b
    Examples:
      s3-eventstore compact THREAD_A THREAD_B
      s3-eventstore compact --idle-for 86400 --json
    """
    if not threads and idle_for is None:
        raise click.UsageError("name THREADS or give --idle-for SECONDS")
    reports = run(_compact(config, threads, idle_for, max_segment_mib << 20, min_turns))
    if as_json:
        click.echo(orjson.dumps(reports).decode())
        return
    for report in reports:
        click.echo(
            f"{report['thread_id']}: {report['turns_compacted']} turn(s) into "
            f"{len(report['segments_written'])} segment(s), "
            f"{report['objects_deleted']} object(s) deleted"
        )
    click.echo(f"compacted {len(reports)} thread(s)")


async def _compact(
    config: ArchiveConfig,
    threads: tuple[str, ...],
    idle_for: float | None,
    max_segment_bytes: int,
    min_turns: int,
) -> list[dict[str, Any]]:
    from s3_eventstore.s3.compaction import compact_idle, compact_threads

    async with config.open_store() as store:
        options = {"max_segment_bytes": max_segment_bytes, "min_turns": min_turns}
        reports = list(await compact_threads(store, threads, **options)) if threads else []
        if idle_for is not None:
            reports.extend(await compact_idle(store, idle_for, **options))
        return [report.to_dict() for report in reports]


@click.command(name="train-dictionary")
@archive_options
@click.argument("threads", nargs=-1)
@click.option(
    "--max-threads", default=200, show_default=True, help="Threads sampled when none named."
)
@click.option("--size-kib", default=32, show_default=True, help="Dictionary size in KiB.")
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def train_dictionary(
    config: ArchiveConfig, threads: tuple[str, ...], max_threads: int, size_kib: int, as_json: bool
) -> None:
    """Train a zstd dictionary on finished turns and store it under the prefix.

    Prints the dictionary id; configure writers with S3EventStore(...,
    dictionary_id=ID). Objects written with a dictionary need it to decompress
    (`zstd -dc -D`), so plain DuckDB cannot read them: opt in knowingly.

    \b
    Examples:
      s3-eventstore train-dictionary
      s3-eventstore train-dictionary THREAD_A THREAD_B --size-kib 64
    """
    dictionary_id = run(_train(config, threads, max_threads, size_kib << 10))
    if as_json:
        click.echo(orjson.dumps({"dictionary_id": dictionary_id}).decode())
    else:
        click.echo(dictionary_id)


async def _train(
    config: ArchiveConfig, threads: tuple[str, ...], max_threads: int, size: int
) -> str:
    from s3_eventstore.s3.dictionaries import train_dictionary as train

    async with config.open_store() as store:
        return await train(
            store, sample_threads=list(threads) or None, max_threads=max_threads, size=size
        )
