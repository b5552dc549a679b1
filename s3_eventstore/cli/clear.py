"""``clear``: delete a thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import orjson

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import archive_options, confirm, fail, plural, printable, run
from s3_eventstore.ops.catalog import list_pages

if TYPE_CHECKING:
    from s3_eventstore.cli.options import ArchiveConfig

__all__ = ["clear"]


@click.command()
@archive_options
@click.argument("thread")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")
def clear(config: ArchiveConfig, thread: str, yes: bool, as_json: bool) -> None:
    """Delete every object of THREAD (asks first unless --yes).

    In a versioned bucket this leaves delete markers; older versions stay until the
    bucket's lifecycle expires them. Exits 3 if the thread has no objects, 5 if Object
    Lock or a policy keeps some of them. The question goes to stderr, so stdout holds
    only the result (`echo y | s3-eventstore clear THREAD --json` is valid JSON).

    \b
    Examples:
      s3-eventstore clear --url s3://my-archive/agents/dev THREAD
      s3-eventstore clear THREAD --yes
    """
    count = run(_clear(config, thread, ask=not yes))
    if as_json:
        click.echo(orjson.dumps({"thread_id": thread, "deleted_objects": count}).decode())
    else:
        click.echo(printable(f"deleted {plural(count, 'object')} of thread {thread!r}"))


async def _clear(config: ArchiveConfig, thread: str, *, ask: bool) -> int:
    """Count, ask, delete: one client for all three (one client creation, not two)."""
    async with config.open_store() as store:
        folder = store.layout.thread_folder(thread)
        count = 0
        async for page in list_pages(store, folder):
            count += len(page.get("Contents", []))
        if count == 0:
            raise fail(f"thread {thread!r} not found (no objects)", ExitCode.NOT_FOUND)
        if ask:
            confirm(f"Delete {plural(count, 'object')} of thread {thread!r} from {config.url}?")
        await store.clear(thread)
        return count
