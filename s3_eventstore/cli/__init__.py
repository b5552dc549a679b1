"""The ``s3-eventstore`` command line: thin commands over the async library.

Each command lives in its own module and is registered on :data:`main` by name; a
command's module is imported only when that command runs (or ``--help`` lists them),
so ``s3-eventstore cat`` pays for nothing ``query`` or ``demo`` need. Shared option
handling, error mapping and progress bars are in :mod:`.options`; exit codes in
:mod:`.exit_codes`. Heavy imports (duckdb, pyarrow, rich, moto) happen inside commands.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Final

import click

from s3_eventstore import __version__
from s3_eventstore.cli import startup

__all__ = ["COMMANDS", "main"]

COMMANDS: Final = {
    "serve": "s3_eventstore.cli.serve:serve",
    "demo": "s3_eventstore.cli.demo:demo",
    "threads": "s3_eventstore.cli.browse:threads",
    "turns": "s3_eventstore.cli.browse:turns",
    "cat": "s3_eventstore.cli.browse:cat",
    "export": "s3_eventstore.cli.export:export",
    "verify": "s3_eventstore.cli.verify:verify",
    "stats": "s3_eventstore.cli.stats:stats",
    "publish": "s3_eventstore.cli.publish:publish",
    "query": "s3_eventstore.cli.query:query",
    "clear": "s3_eventstore.cli.clear:clear",
    "compact": "s3_eventstore.cli.compact:compact",
    "train-dictionary": "s3_eventstore.cli.compact:train_dictionary",
    "doctor": "s3_eventstore.cli.doctor:doctor",
}
"""Every command, by name: ``module:attribute`` of its click command."""


class _LazyGroup(click.Group):
    """A group that imports a command's module only when the command is looked up.

    Called as a program (``s3-eventstore``, ``python -m s3_eventstore``), it first sets
    the process up for a quick start (:func:`.startup.begin`); click's test runner calls
    :meth:`main` instead, and leaves the process as it is.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        startup.begin()
        return super().__call__(*args, **kwargs)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s3-eventstore")
def main() -> None:
    """Archive and inspect AI agent event streams in S3.

    The archive is s3://BUCKET/PREFIX (--url or S3_EVENTSTORE_URL); credentials and
    region come from the standard AWS chain. Exit codes: 0 ok, 1 declined, 2 usage,
    3 not found, 4 integrity failure, 5 storage error, 6 an optional extra is missing.

    \b
    Examples:
      s3-eventstore demo --keep            # an embedded local archive, kept and served
      s3-eventstore serve                  # or: a local S3 server, prints export lines
      export S3_EVENTSTORE_URL=s3://my-archive/agents/prod
      s3-eventstore threads --details
      s3-eventstore cat THREAD | jq -r .type
      s3-eventstore query "SELECT type, count(*) FROM events GROUP BY type"
    """
    _show_retries()


def _show_retries() -> None:
    """Print each S3 retry (logged at INFO with its cause) on stderr, so that a slow or
    unreachable endpoint is visible while botocore retries, not only when it gives up."""
    retries = logging.getLogger("s3_eventstore.retries")
    if not any(isinstance(handler, _StderrHandler) for handler in retries.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("s3-eventstore: %(message)s"))
        retries.addHandler(handler)
    retries.setLevel(logging.INFO)


class _StderrHandler(logging.Handler):
    """Writes to whatever stderr is when the record comes (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)
