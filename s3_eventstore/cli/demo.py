"""``s3-eventstore demo``: the main job, on an embedded S3 server or any archive."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import fail, optional_archive_options, run, stdout_bytes
from s3_eventstore.errors import MissingExtraError

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.demo.demo import DemoReport
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.demo.workload import WorkloadSpec

__all__ = ["demo"]

EMBEDDED_PREFIX = "demo"


@click.command()
@optional_archive_options
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the archive: on the embedded server, keep serving it after the report and "
    "print the export lines that reach it (Ctrl-C stops). An archive given by --url is "
    "always kept.",
)
@click.option("--threads", default=40, show_default=True, type=click.IntRange(1), help="Threads.")
@click.option("--turns", default=10, show_default=True, type=click.IntRange(1), help="Turns each.")
@click.option("--events", default=20, show_default=True, type=click.IntRange(1), help="Per turn.")
@click.option("--seed", type=click.IntRange(0), help="Workload seed (default: a random one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(
    config: ArchiveConfig,
    keep: bool,
    threads: int,
    turns: int,
    events: int,
    seed: int | None,
    as_json: bool,
) -> None:
    """Replay a realistic agent workload, read it back and check every byte.

    With no archive it starts an S3 server on 127.0.0.1 (moto, from the `server`
    extra), so no AWS account is needed; --keep then keeps serving it. With --url (or
    S3_EVENTSTORE_URL, as `serve` prints) it writes into that archive — a local one,
    MinIO, or AWS — with the endpoint and credentials every command uses. Exits 4 if
    anything read back differs, 5 on a storage error (no such bucket), 6 without the
    `server` extra.

    \b
    Examples:
      s3-eventstore demo
      s3-eventstore demo --keep           # then paste the export lines into another shell
      s3-eventstore demo --threads 200 --json
      s3-eventstore demo --url s3://scratch/demo --endpoint-url http://127.0.0.1:9000
    """
    from s3_eventstore.demo.workload import WorkloadSpec

    spec = WorkloadSpec(
        threads=threads,
        turns_per_thread=turns,
        events_per_turn=events,
        seed=secrets.randbelow(2**31) if seed is None else seed,
    )
    if config.url:
        report = run(_run(config, spec, quiet=as_json))
        _print(report, as_json=as_json)
        raise SystemExit(int(ExitCode.OK if report.ok else ExitCode.INTEGRITY))
    if config.endpoint_url:
        raise click.UsageError(
            "--endpoint-url (or S3_EVENTSTORE_ENDPOINT_URL/AWS_ENDPOINT_URL_S3) needs the "
            "archive too: --url s3://BUCKET/PREFIX (or S3_EVENTSTORE_URL)"
        )
    from s3_eventstore.demo.embedded import EmbeddedS3Server

    try:
        server = EmbeddedS3Server()
    except MissingExtraError as err:
        raise fail(str(err), ExitCode.MISSING_EXTRA) from err
    with server:
        report = run(_run_embedded(server, spec, quiet=as_json))
        _print(report, as_json=as_json)
        if not report.ok:
            raise SystemExit(int(ExitCode.INTEGRITY))
        if keep:
            _keep_serving(server, report)
    raise SystemExit(int(ExitCode.OK))


def _print(report: DemoReport, *, as_json: bool) -> None:
    text = json.dumps(report.to_dict(), indent=2) if as_json else report.render()
    with stdout_bytes() as out:
        out.write(text.encode("utf-8") + b"\n")


def _keep_serving(server: EmbeddedS3Server, report: DemoReport) -> None:
    from s3_eventstore.demo.localserver import LocalArchive, wait_for_stop

    archive = LocalArchive(server.endpoint_url, f"s3://{report.bucket}/{EMBEDDED_PREFIX}")
    click.echo(
        "# the archive is kept while this runs (in memory; `serve --data-dir DIR` keeps it "
        "in a folder). Paste into another shell; Ctrl-C here stops the server:",
        err=True,
    )
    with stdout_bytes() as out:
        out.write(("\n".join(archive.export_lines()) + "\n").encode("utf-8"))
    wait_for_stop()


def _say(quiet: bool) -> Any:
    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    return say


async def _run(config: ArchiveConfig, spec: WorkloadSpec, *, quiet: bool) -> DemoReport:
    from s3_eventstore.demo.demo import run_demo

    async with config.open_store() as store:
        # One LIST first: a missing bucket or a refused credential fails here, cleanly,
        # before any turn is buffered.
        async for _ in store.list_pages(store.layout.threads_root):
            break
        endpoint = config.endpoint_url or "AWS"
        return await run_demo(store, spec, endpoint=endpoint, progress=_say(quiet))


async def _run_embedded(server: EmbeddedS3Server, spec: WorkloadSpec, *, quiet: bool) -> DemoReport:
    from s3_eventstore.demo.demo import run_demo
    from s3_eventstore.s3.store import S3EventStore

    say = _say(quiet)
    say(f"embedded S3 server at {server.endpoint_url}")
    session: Any = server.session()
    name = f"demo-{secrets.token_hex(6)}"
    async with session.client("s3", endpoint_url=server.endpoint_url) as admin:
        await admin.create_bucket(Bucket=name)
    async with S3EventStore(
        name, EMBEDDED_PREFIX, endpoint_url=server.endpoint_url, session=session
    ) as store:
        return await run_demo(store, spec, endpoint=server.endpoint_url, progress=say)
