"""``publish``: build the Parquet tier (docs/FORMAT.md section 10) from the archive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import orjson

from s3_eventstore.cli.options import archive_options, run

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["publish"]


@click.command()
@archive_options
@click.option(
    "--target-file-mib",
    default=128,
    show_default=True,
    type=click.IntRange(min=1),
    help="Close a Parquet file at this size (engines like 64-512 MiB).",
)
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def publish(config: ArchiveConfig, target_file_mib: int, as_json: bool) -> None:
    """Publish finished turns not yet in the Parquet tier (PREFIX/published/).

    Incremental and idempotent: run it as often as you like, from several hosts at
    once; each turn is published once. A run killed half-way publishes nothing
    half-way: the next run completes the job and deletes its leftovers. `query` reads
    the published files plus the turns not yet published. Needs the `analytics` extra.

    \b
    Examples:
      s3-eventstore publish --url s3://my-archive/agents/prod
      s3-eventstore publish --json | jq .turns
    """
    report = run(_publish(config, target_file_mib << 20))
    if as_json:
        click.echo(orjson.dumps(report).decode())
        return
    click.echo(
        f"published {report['turns']} turn(s), {report['events']} event(s) in "
        f"{len(report['files'])} file(s) ({report['bytes_written']} bytes); "
        f"{len(report['garbage_deleted'])} leftover file(s) deleted"
        + (f"; {report['open_turns']} open turn(s) left for later" if report["open_turns"] else "")
    )


async def _publish(config: ArchiveConfig, target_file_bytes: int) -> dict[str, Any]:
    from s3_eventstore.ops.columnar.publish import publish as publish_tier

    async with config.open_store() as store:
        report = await publish_tier(store, target_file_bytes=target_file_bytes)
    return report.to_dict()
