"""``verify``: download every turn object and check it against its manifest."""

from __future__ import annotations

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
    printable,
    read_thread_ids,
    run,
    thread_ids_option,
    threads_not_found,
)
from s3_eventstore.ops.catalog import iter_threads, verify_archive

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.s3.verify import VerifyReport

__all__ = ["verify"]


@click.command()
@archive_options
@click.argument("thread", nargs=-1)
@thread_ids_option
@output_options
def verify(
    config: ArchiveConfig, thread: tuple[str, ...], threads_from: Any, as_json: bool, quiet: bool
) -> None:
    """Check every turn object of THREAD(s), or of the whole prefix, byte for byte.

    Each object is downloaded, decompressed and checked against its manifest and its
    key (size, SHA-256, line count, envelopes, timestamps), as a read would. Bad objects
    are listed; the exit code is 4 if there is any, 3 if a named thread does not exist.

    \b
    Examples:
      s3-eventstore verify --url s3://my-archive/agents/prod
      s3-eventstore verify THREAD --json | jq .problems
    """
    named = list(dict.fromkeys([*thread, *read_thread_ids(threads_from)]))
    report, missing = run(_verify(config, named, quiet=quiet))
    if as_json:
        data = {
            "ok": report.clean and not missing,
            "objects_checked": report.objects_checked,
            "objects_ok": report.ok,
            "events": report.events,
            "bytes_read": report.bytes_read,
            "problems": [
                {"key": p.key, "error": p.error, "message": p.message} for p in report.problems
            ],
            "foreign": list(report.foreign),
            "vanished": list(report.vanished),
            "orphans": list(report.orphans),
            "missing_threads": missing,
        }
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(
            f"checked {plural(report.objects_checked, 'object')} "
            f"({plural(report.bytes_read, 'byte')}, {plural(report.events, 'event')}): "
            f"{report.ok} ok, {len(report.problems)} bad"
        )
        for problem in report.problems:
            click.echo(printable(f"BAD  {problem.key}: {problem.error}: {problem.message}"))
        for key in report.foreign:
            click.echo(printable(f"SKIP {key}: not a turn object"))
        for key in report.orphans:
            click.echo(
                printable(
                    f"ORPHAN {key}: a segment no stub names (a compaction that lost a race "
                    f"with clear, or was interrupted): readers ignore it; the next compact "
                    f"of the thread adopts its turns, clear deletes it"
                )
            )
    if report.problems:
        failed = plural(len(report.problems), "object")
        raise fail(f"{failed} failed verification", ExitCode.INTEGRITY)
    if missing:
        raise threads_not_found(missing)


async def _verify(
    config: ArchiveConfig, threads: list[str], *, quiet: bool
) -> tuple[VerifyReport, list[str]]:
    named = bool(threads)
    async with config.open_store() as store:
        if not named:
            with Progress("listing threads", quiet=quiet) as listing:
                async for thread_id in iter_threads(store):
                    threads.append(thread_id)
                    listing.advance()
        missing: list[str] = []
        with Progress("verifying threads", total=len(threads), quiet=quiet) as bar:

            def done(thread_id: str, report: VerifyReport) -> None:
                empty = not (report.objects_checked or report.problems or report.vanished)
                if named and empty:
                    missing.append(thread_id)
                bar.advance()

            report = await verify_archive(store, threads, progress=done)
        return report, sorted(missing)
