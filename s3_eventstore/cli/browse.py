"""``threads``, ``turns`` and ``cat``: looking at what the archive holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import click
import orjson

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import (
    archive_options,
    fail,
    output_options,
    plural,
    printable,
    run,
    stdout_bytes,
)
from s3_eventstore.ops.catalog import (
    iter_thread_summaries,
    iter_threads,
    iter_turn_events,
    read_turn,
    turn_infos,
)

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.ops.catalog import TurnInfo

__all__ = ["TURN_NUMBER", "cat", "threads", "turns"]


class _TurnNumber(click.ParamType[int]):
    """A turn number, 0..2**64-1, with a message that says so."""

    name = "turn"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not text.isdigit() or not text.isascii():
                self.fail(f"{value!r} is not a turn number (an integer 0..2^64-1)", param, ctx)
            number = int(text)
        if not 0 <= number <= 2**64 - 1:
            self.fail(f"{value!r} is not a turn number (an integer 0..2^64-1)", param, ctx)
        return number


TURN_NUMBER: Final = _TurnNumber()


@click.command()
@archive_options
@click.option(
    "--details", "-d", is_flag=True, help="Add turn counts and stored sizes (lists every object)."
)
@click.option(
    "--null",
    "-0",
    "null",
    is_flag=True,
    help="Thread ids only, each ended by a NUL byte, exactly (for --threads-from, xargs -0).",
)
@output_options
def threads(config: ArchiveConfig, details: bool, null: bool, as_json: bool, quiet: bool) -> None:
    """List the threads under the archive's prefix, as the listing streams in.

    Without --details it lists only folders (cheap: no turn object is listed). With
    --details it lists every object and prints, per thread, the number of turns
    (compacted ones included), their stored bytes and the first and last turn. Output
    is one thread per line (tab-separated with --details; control characters escaped),
    JSON lines with --json, or NUL-terminated ids with -0: the last two keep every id
    exactly, so they feed `export --threads-from -`.

    \b
    Examples:
      s3-eventstore threads --url s3://my-archive/agents/prod
      S3_EVENTSTORE_URL=s3://my-archive/agents/prod s3-eventstore threads -d --json | jq .turns
      s3-eventstore threads -0 | s3-eventstore export --threads-from - -o all.jsonl
    """
    if null and (as_json or details):
        raise click.UsageError("-0 prints bare thread ids: not with --json or --details")
    run(_threads(config, details=details, as_json=as_json, null=null))


async def _threads(config: ArchiveConfig, *, details: bool, as_json: bool, null: bool) -> None:
    with stdout_bytes() as out:
        async with config.open_store() as store:
            if not details:
                unwritable: list[str] = []
                async for thread_id in iter_threads(store):
                    if as_json:
                        out.write(orjson.dumps({"thread_id": thread_id}) + b"\n")
                    elif null:
                        if "\0" in thread_id:  # cannot be NUL-terminated: say so at the end
                            unwritable.append(thread_id)
                            continue
                        out.write(thread_id.encode("utf-8") + b"\0")
                    else:
                        out.write(printable(thread_id).encode("utf-8") + b"\n")
                    out.flush()
                if unwritable:
                    names = ", ".join(repr(t) for t in unwritable)
                    raise fail(
                        f"{plural(len(unwritable), 'thread id')} with a NUL byte left out of "
                        f"-0 output (use --json): {names}",
                        ExitCode.USAGE,
                    )
                return
            if not as_json:
                out.write(b"thread_id\tturns\tstored_bytes\tfirst_turn\tlast_turn\n")
            async for summary in iter_thread_summaries(store):
                if as_json:
                    record: dict[str, Any] = {
                        "thread_id": summary.thread_id,
                        "turns": summary.turns,
                        "stored_bytes": summary.stored_bytes,
                        "first_turn": summary.first_turn,
                        "last_turn": summary.last_turn,
                        "other_objects": summary.other_objects,
                        "segments": summary.segments,
                    }
                    out.write(orjson.dumps(record) + b"\n")
                else:
                    fields = (
                        printable(summary.thread_id),
                        summary.turns,
                        summary.stored_bytes,
                        "" if summary.first_turn is None else summary.first_turn,
                        "" if summary.last_turn is None else summary.last_turn,
                    )
                    line = "\t".join(str(field) for field in fields)
                    out.write(line.encode("utf-8") + b"\n")
                out.flush()


@click.command()
@archive_options
@click.argument("thread")
@output_options
def turns(config: ArchiveConfig, thread: str, as_json: bool, quiet: bool) -> None:
    """Show each finished turn of THREAD from its manifest (no event is downloaded).

    Per turn: events, raw and stored bytes, compression ratio, first and last event
    timestamps, when the turn was finished and whether it is stored as its own object
    or in a segment (compacted). Costs one LIST, one HEAD per turn object and one ranged
    GET per segment. Exits 3 when the thread has no turn, 4 when a manifest is unreadable.

    \b
    Examples:
      s3-eventstore turns --url s3://my-archive/agents/prod 0190a3c4-5b6e-7d8f-9a0b-1c2d3e4f5a6b
      s3-eventstore turns THREAD --json | jq 'select(.events > 100)'
    """
    infos = run(_turns(config, thread))
    if not infos:
        raise fail(f"thread {thread!r} not found (no turns)", ExitCode.NOT_FOUND)
    with stdout_bytes() as out:
        if as_json:
            for info in infos:
                out.write(orjson.dumps(info.to_dict()) + b"\n")
        else:
            out.write(_turn_table(infos).encode("utf-8") + b"\n")
    bad = [info for info in infos if info.problem is not None]
    for info in bad:
        click.echo(f"error: {info.problem}", err=True)
    if bad:
        raise SystemExit(int(ExitCode.INTEGRITY))


async def _turns(config: ArchiveConfig, thread: str) -> list[TurnInfo]:
    async with config.open_store() as store:
        return await turn_infos(store, thread)


def _turn_table(infos: list[TurnInfo]) -> str:
    header = (
        "turn",
        "events",
        "raw_bytes",
        "stored_bytes",
        "ratio",
        "first",
        "last",
        "finished",
        "stored_in",
    )
    rows: list[tuple[str, ...]] = [header]
    for info in infos:
        m = info.manifest
        ratio = info.ratio
        rows.append(
            (
                str(info.turn),
                str(m.events) if m else "?",
                str(m.raw_bytes) if m else "?",
                str(m.stored_bytes) if m else str(info.size),
                f"{ratio:.2f}" if ratio is not None else "-",
                (m.first_timestamp or "-") if m else "?",
                (m.last_timestamp or "-") if m else "?",
                m.finished_at if m else "unreadable manifest",
                "segment" if info.segment is not None else "object",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i < 5 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


@click.command()
@archive_options
@click.argument("thread")
@click.argument("turn", type=TURN_NUMBER, required=False)
def cat(config: ArchiveConfig, thread: str, turn: int | None) -> None:
    """Print the events of THREAD (or of one TURN) as JSON lines, exactly as stored.

    Every object is verified against its manifest before its lines are written; the
    output is the objects' payloads byte for byte, in turn order, so it pipes into jq.
    Exits 3 for an unknown thread or turn, 4 for a corrupt object.

    \b
    Examples:
      s3-eventstore cat --url s3://my-archive/agents/prod THREAD | jq -r .type | sort | uniq -c
      s3-eventstore cat THREAD 3 | head -n 5
    """
    found = run(_cat(config, thread, turn))
    if not found:
        what = f"turn {turn} of thread {thread!r}" if turn is not None else f"thread {thread!r}"
        raise fail(f"{what} not found", ExitCode.NOT_FOUND)


async def _cat(config: ArchiveConfig, thread: str, turn: int | None) -> bool:
    found = False
    with stdout_bytes() as out:
        async with config.open_store() as store:
            if turn is not None:  # one GET, no LIST
                events = await read_turn(store, thread, turn)
                if events is None:
                    return False
                out.write(b"".join([event.to_json() + b"\n" for event in events]))
                return True
            async for _, events in iter_turn_events(store, thread):
                found = True
                out.write(b"".join([event.to_json() + b"\n" for event in events]))
                out.flush()
    return found
