"""The ``s3-eventstore`` command line: thin commands over the async library.

Each command lives in its own module and is registered on :data:`main` here.
"""

from __future__ import annotations

import click

from s3_eventstore import __version__
from s3_eventstore.cli.demo import demo

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s3-eventstore")
def main() -> None:
    """Archive and inspect AI agent event streams in S3.

    \b
    Example:
      s3-eventstore demo
    """


main.add_command(demo)
