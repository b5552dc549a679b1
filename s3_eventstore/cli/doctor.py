"""``doctor``: does the endpoint honour what the store relies on?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import orjson

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import archive_options, fail, run
from s3_eventstore.ops.analytics import parse_archive_url

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.ops.doctor import DoctorReport

__all__ = ["doctor"]


@click.command()
@archive_options
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def doctor(config: ArchiveConfig, as_json: bool) -> None:
    """Probe the endpoint and bucket for the behaviours the archive relies on.

    Conditional PUT (If-None-Match), checksums, complete paginated listing, metadata,
    ranged GET, conditional multipart completion and batch delete are each tried under
    PREFIX/_doctor/ (never under threads/), then cleaned up. Requirements decide the
    exit code (5 if one is missing); advisories (what the store uses when present:
    server-side rejection of a wrong checksum, conditional multipart completion for
    streamed turns) are reported, marked "(advisory)", and do not fail.

    \b
    Examples:
      s3-eventstore doctor --url s3://scratch/probe --endpoint-url http://127.0.0.1:9000
      s3-eventstore doctor --json | jq '.checks[] | select(.ok | not)'
    """
    report = run(_doctor(config))
    if as_json:
        click.echo(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(report.format())
    if report.advisories:
        click.echo(
            f"note: the endpoint lacks (advisory, not required): {', '.join(report.advisories)}",
            err=True,
        )
    if not report.ok:
        raise fail(f"the endpoint lacks: {', '.join(report.missing)}", ExitCode.STORAGE)


async def _doctor(config: ArchiveConfig) -> DoctorReport:
    from s3_eventstore.ops.doctor import run_doctor

    bucket, prefix = parse_archive_url(config.url)
    session: Any = None
    if config.region or config.profile:
        import aioboto3

        session = aioboto3.Session(profile_name=config.profile, region_name=config.region)
    return await run_doctor(
        config.endpoint_url,
        bucket,
        prefix,
        session=session,
        checksum_headers=config.checksum_headers,
    )
