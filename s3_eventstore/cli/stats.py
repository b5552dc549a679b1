"""``stats``: what the archive holds and what keeping it costs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import orjson

from s3_eventstore.cli.options import Progress, archive_options, output_options, plural, run
from s3_eventstore.ops.catalog import archive_stats
from s3_eventstore.ops.costs import STORAGE_CLASSES

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig
    from s3_eventstore.ops.catalog import ArchiveStats

__all__ = ["stats"]


@click.command()
@archive_options
@click.option(
    "--no-manifests",
    is_flag=True,
    help="Skip the HEAD per object: no event or raw byte counts, one LIST per 1000 objects.",
)
@output_options
def stats(config: ArchiveConfig, no_manifests: bool, as_json: bool, quiet: bool) -> None:
    """Count threads, turn objects, events and bytes, and estimate the monthly cost.

    Events and raw (uncompressed) bytes come from the manifests: one HEAD per object.
    The cost estimate uses AWS us-east-1 list prices per storage class, including the
    per-object minimums (128 KB for STANDARD_IA and GLACIER_IR) and the 40 KB Glacier
    index per object that dominate for small turn objects; see docs/CLI.md.

    \b
    Examples:
      s3-eventstore stats --url s3://my-archive/agents/prod
      s3-eventstore stats --no-manifests --json | jq '.costs.classes[] | {storage_class, storage_usd_month}'
    """
    result = run(_stats(config, read_manifests=not no_manifests, quiet=quiet))
    if as_json:
        click.echo(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(render_stats(result))


async def _stats(config: ArchiveConfig, *, read_manifests: bool, quiet: bool) -> ArchiveStats:
    async with config.open_store() as store:
        with Progress("reading manifests", quiet=quiet) as bar:
            return await archive_stats(store, read_manifests=read_manifests, progress=bar.advance)


def render_stats(stats: ArchiveStats) -> str:
    """The human-readable report."""
    ratio = f"{stats.ratio:.2f}x" if stats.ratio is not None else "-"
    unknown = "- (--no-manifests)"
    lines = [
        f"threads        {stats.threads}",
        f"turns          {stats.turns if stats.turns is not None else unknown}"
        + (f" finished, {stats.open_turns} open" if stats.open_turns else ""),
        f"objects        {stats.objects}"
        + (f" ({plural(stats.segments, 'segment')} of compacted turns)" if stats.segments else ""),
        f"events         {stats.events if stats.events is not None else unknown}",
        f"raw bytes      {stats.raw_bytes if stats.raw_bytes is not None else unknown}",
        f"stored bytes   {stats.stored_bytes}",
        f"ratio          {ratio}",
    ]
    if stats.other_objects:
        lines.append(
            f"other objects  {stats.other_objects} (neither turns nor segments, not counted)"
        )
    if stats.unreadable_manifests:
        unreadable = plural(stats.unreadable_manifests, "manifest")
        lines.append(f"unreadable     {unreadable}: run verify")
    lines.append("")
    lines.append("estimated cost (AWS list prices, us-east-1; GB = 2^30 bytes)")
    lines.append(f"{'storage class':<14}{'billed GB':>12}{'USD/month':>12}{'transition USD':>16}")
    gb = 1024**3
    for price, cost in zip(STORAGE_CLASSES, stats.costs.classes, strict=True):
        billed = (cost.billable_bytes + cost.standard_overhead_bytes) / gb
        lines.append(
            f"{price.name:<14}{billed:>12.6f}{cost.storage_usd_month:>12.6f}"
            f"{cost.transition_usd:>16.6f}"
        )
    lines.append(
        f"writing the objects: {stats.costs.put_usd:.6f} USD (PUT); "
        f"reading all once from STANDARD: {stats.costs.get_usd:.6f} USD (GET)"
    )
    return "\n".join(lines)
