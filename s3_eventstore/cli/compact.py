"""``compact`` and ``train-dictionary``: the archive-economics commands."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click
import orjson

from s3_eventstore.cli.options import (
    Progress,
    archive_options,
    plural,
    printable,
    read_thread_ids,
    run,
    thread_ids_option,
    threads_not_found,
)

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.s3.store import S3EventStore

__all__ = ["compact", "train_dictionary"]

MAX_SEGMENT_MIB = 5 * 1024
"""S3's largest single PUT is 5 GiB."""


def _seconds(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter(f"{value} is not a number of seconds (0 or more)")
    return value


@click.command()
@archive_options
@click.argument("threads", nargs=-1)
@thread_ids_option
@click.option(
    "--idle-for",
    type=float,
    callback=_seconds,
    metavar="SECONDS",
    help="Compact every thread with no object written for this many seconds (0 or more).",
)
@click.option(
    "--max-segment-mib",
    default=16,
    show_default=True,
    type=click.IntRange(1, MAX_SEGMENT_MIB),
    help="Largest segment, in MiB.",
)
@click.option(
    "--min-turns",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Leave runs of fewer turn objects than this alone.",
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def compact(
    config: ArchiveConfig,
    threads: tuple[str, ...],
    threads_from: Any,
    idle_for: float | None,
    max_segment_mib: int,
    min_turns: int,
    as_json: bool,
) -> None:
    """Merge finished turn objects of THREADS into segment objects.

    Fewer, larger objects: cheaper archive classes, one GET per segment to read a
    thread, event counts from the LIST alone. Each compacted turn leaves a stub under
    its key, so a worker that finishes an already-compacted turn later is still refused
    (TurnAlreadyFinishedError); open turns are left alone. Running it again is safe: a
    thread with nothing left to merge is reported as such. Exits 3 if a named thread
    does not exist (the others are still compacted).

    \b
    Examples:
      s3-eventstore compact THREAD_A THREAD_B
      s3-eventstore compact --idle-for 86400 --json
    """
    named = [*threads, *read_thread_ids(threads_from)]
    if not named and idle_for is None:
        raise click.UsageError("name THREADS (or --threads-from FILE) or give --idle-for SECONDS")
    reports, missing = run(_compact(config, named, idle_for, max_segment_mib << 20, min_turns))
    changed = [r for r in reports if r["turns_compacted"] or r["stubs_written"]]
    if as_json:
        click.echo(orjson.dumps({"threads": reports, "missing_threads": missing}).decode())
    else:
        for report in reports:
            click.echo(printable(f"{report['thread_id']}: {_describe(report, min_turns)}"))
        click.echo(f"compacted {len(changed)} of {plural(len(reports), 'thread')}")
    if missing:
        raise threads_not_found(missing)


def _describe(report: dict[str, Any], min_turns: int) -> str:
    segments = len(report["segments_written"])
    stubbed = report["stubs_written"]
    left = len(report["turn_objects_left"])
    if report["turns_compacted"]:
        text = (
            f"{plural(report['turns_compacted'], 'turn')} into {plural(segments, 'segment')}, "
            f"{plural(stubbed, 'turn object')} replaced by stubs"
        )
    elif stubbed:
        text = f"{plural(stubbed, 'leftover turn object')} of an earlier run replaced by stubs"
    else:
        text = "nothing to compact"
    if left:
        text += (
            f" ({plural(left, 'turn object')} left as is: runs shorter than {min_turns} "
            "or turns larger than a segment)"
        )
    elif not report["turns_compacted"] and not stubbed:
        text += " (already compacted)"
    return text


async def _compact(
    config: ArchiveConfig,
    threads: list[str],
    idle_for: float | None,
    max_segment_bytes: int,
    min_turns: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    from s3_eventstore.s3.compaction import compact_idle, compact_threads

    async with config.open_store() as store:
        existing = [t for t in dict.fromkeys(threads) if await _has_objects(store, t)]
        missing = [t for t in dict.fromkeys(threads) if t not in existing]
        options = {"max_segment_bytes": max_segment_bytes, "min_turns": min_turns}
        reports = list(await compact_threads(store, existing, **options)) if existing else []
        if idle_for is not None:
            reports.extend(await compact_idle(store, idle_for, **options))
        return [report.to_dict() for report in reports], missing


async def _has_objects(store: S3EventStore, thread_id: str) -> bool:
    from s3_eventstore.ops.catalog import list_pages

    async for page in list_pages(store, store.layout.thread_folder(thread_id)):
        if page.get("Contents"):
            return True
    return False


@click.command(name="train-dictionary")
@archive_options
@click.argument("threads", nargs=-1)
@thread_ids_option
@click.option(
    "--max-threads",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads sampled when none are named.",
)
@click.option(
    "--size-kib",
    default=32,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Dictionary size in KiB.",
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def train_dictionary(
    config: ArchiveConfig,
    threads: tuple[str, ...],
    threads_from: Any,
    max_threads: int,
    size_kib: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Train a zstd dictionary on finished turns and store it under the prefix.

    Prints the dictionary id; configure writers with S3EventStore(...,
    dictionary_id=ID). Objects written with a dictionary need it to decompress
    (`zstd -dc -D`), so plain DuckDB cannot read them: opt in knowingly. Progress
    (threads found, then the training) goes to stderr unless --quiet.

    \b
    Examples:
      s3-eventstore train-dictionary
      s3-eventstore train-dictionary THREAD_A THREAD_B --size-kib 64
    """
    named = [*threads, *read_thread_ids(threads_from)]
    dictionary_id = run(_train(config, named, max_threads, size_kib << 10, quiet=quiet))
    if as_json:
        click.echo(orjson.dumps({"dictionary_id": dictionary_id}).decode())
    else:
        click.echo(dictionary_id)


async def _train(
    config: ArchiveConfig, threads: list[str], max_threads: int, size: int, *, quiet: bool
) -> str:
    from s3_eventstore.ops.catalog import iter_threads
    from s3_eventstore.s3.dictionaries import train_dictionary as train

    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    async with config.open_store() as store:
        if not threads:
            with Progress("finding threads", total=max_threads, quiet=quiet) as bar:
                async for thread_id in iter_threads(store):
                    threads.append(thread_id)
                    bar.advance()
                    if len(threads) >= max_threads:
                        break
        say(f"sampling the finished turns of {plural(len(threads), 'thread')}…")
        samples = 0

        def sampled(_thread_id: str, count: int) -> None:
            nonlocal samples
            samples += count
            bar.advance()

        with Progress("reading sampled threads", total=len(threads), quiet=quiet) as bar:
            dictionary_id = await train(store, sample_threads=threads, size=size, progress=sampled)
        say(f"trained a {size >> 10} KiB dictionary on {plural(samples, 'finished turn')}")
        return dictionary_id
