"""``s3-eventstore demo``: the main job, on an embedded S3 server or a real endpoint."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.demo.demo import DemoReport, run_demo
from s3_eventstore.demo.workload import WorkloadSpec
from s3_eventstore.errors import EventStoreError
from s3_eventstore.s3.store import S3EventStore


@click.command()
@click.option("--endpoint-url", help="S3-compatible endpoint; default: start an embedded one.")
@click.option("--bucket", help="Bucket to use; default: a new one on the embedded server.")
@click.option("--prefix", default="demo/", show_default=True, help="Key prefix of the archive.")
@click.option("--threads", default=40, show_default=True, help="Threads (conversations).")
@click.option("--turns", default=10, show_default=True, help="Turns per thread.")
@click.option("--events", default=20, show_default=True, help="Events per turn.")
@click.option("--seed", default=0, show_default=True, help="Workload seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(
    endpoint_url: str | None,
    bucket: str | None,
    prefix: str,
    threads: int,
    turns: int,
    events: int,
    seed: int,
    as_json: bool,
) -> None:
    """Replay a realistic agent workload, read it back and check every byte.

    With no options it starts an S3 server on 127.0.0.1 (moto, from the `server`
    extra), so no AWS account is needed. With --endpoint-url and --bucket it runs
    against any S3-compatible store, using the standard AWS credential chain.

    \b
    Examples:
      s3-eventstore demo
      s3-eventstore demo --threads 200 --json
      s3-eventstore demo --endpoint-url http://127.0.0.1:9000 --bucket scratch
    """
    spec = WorkloadSpec(threads=threads, turns_per_thread=turns, events_per_turn=events, seed=seed)
    try:
        report = asyncio.run(_run(endpoint_url, bucket, prefix, spec, quiet=as_json))
    except EventStoreError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(ExitCode.STORAGE)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.render())
    sys.exit(ExitCode.OK if report.ok else ExitCode.INTEGRITY)


async def _run(
    endpoint_url: str | None, bucket: str | None, prefix: str, spec: WorkloadSpec, *, quiet: bool
) -> DemoReport:
    def say(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    if endpoint_url is not None:
        if bucket is None:
            raise click.UsageError("--bucket is required with --endpoint-url")
        async with S3EventStore(bucket, prefix, endpoint_url=endpoint_url) as store:
            return await run_demo(store, spec, endpoint=endpoint_url, progress=say)

    from s3_eventstore.demo.embedded import EmbeddedS3Server

    with EmbeddedS3Server() as server:
        say(f"embedded S3 server at {server.endpoint_url}")
        session: Any = server.session()
        name = bucket or f"demo-{uuid.uuid4().hex[:12]}"
        async with session.client("s3", endpoint_url=server.endpoint_url) as admin:
            await admin.create_bucket(Bucket=name)
        async with S3EventStore(
            name, prefix, endpoint_url=server.endpoint_url, session=session
        ) as store:
            return await run_demo(store, spec, endpoint=server.endpoint_url, progress=say)
