"""The ``s3-eventstore`` command line: thin commands over the async library.

Each command lives in its own module and is registered on :data:`main` here. Shared
option handling, error mapping and progress bars are in :mod:`.options`; exit codes
in :mod:`.exit_codes`. Heavy imports (duckdb, pyarrow, rich) happen inside commands.
"""

from __future__ import annotations

import click

from s3_eventstore import __version__
from s3_eventstore.cli.browse import cat, threads, turns
from s3_eventstore.cli.clear import clear
from s3_eventstore.cli.compact import compact, train_dictionary
from s3_eventstore.cli.demo import demo
from s3_eventstore.cli.doctor import doctor
from s3_eventstore.cli.export import export
from s3_eventstore.cli.query import query
from s3_eventstore.cli.stats import stats
from s3_eventstore.cli.verify import verify

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s3-eventstore")
def main() -> None:
    """Archive and inspect AI agent event streams in S3.

    The archive is s3://BUCKET/PREFIX (--url or S3_EVENTSTORE_URL); credentials and
    region come from the standard AWS chain. Exit codes: 0 ok, 2 usage, 3 not found,
    4 integrity failure, 5 storage error.

    \b
    Examples:
      s3-eventstore demo
      export S3_EVENTSTORE_URL=s3://my-archive/agents/prod
      s3-eventstore threads --details
      s3-eventstore cat THREAD | jq -r .type
      s3-eventstore query "SELECT type, count(*) FROM events GROUP BY type"
    """


_COMMANDS = (threads, turns, cat, export, verify, stats, query, clear, compact, train_dictionary)
for _command in (*_COMMANDS, doctor, demo):
    main.add_command(_command)
