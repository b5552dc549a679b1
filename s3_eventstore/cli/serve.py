"""``serve``: a local S3 server on 127.0.0.1 holding an archive, until stopped."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.options import fail
from s3_eventstore.errors import ConfigurationError, MissingExtraError

__all__ = ["serve"]


@click.command()
@click.option(
    "--port",
    default=5077,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--url",
    "-u",
    default="s3://local-archive/agents",
    show_default=True,
    metavar="s3://BUCKET/PREFIX",
    help="The archive to serve (its bucket is created).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, writable=True, path_type=Path),
    help="Keep the data in this folder: loaded at start, saved when serve stops "
    "(Ctrl-C, SIGTERM). Default: in memory, for this session only.",
)
def serve(port: int, url: str, data_dir: Path | None) -> None:
    """Serve a local archive on 127.0.0.1: try every command without an AWS account.

    Starts the embedded S3 server (moto, the `server` extra) with the archive's bucket
    and prints the `export` lines to paste into another shell: the archive URL, the
    endpoint and the dummy credentials the server accepts. Then fill it with `demo
    --keep` and run any command. Ctrl-C stops the server; the data lives for the
    session, or in --data-dir across sessions.

    \b
    Examples:
      s3-eventstore serve                        # then, in another shell: paste the exports
      s3-eventstore demo --keep && s3-eventstore threads --details
      s3-eventstore serve --data-dir ~/.s3-eventstore-local --port 0
    """
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from s3_eventstore.demo.localserver import (
        LocalArchive,
        ensure_bucket,
        load_snapshot,
        save_snapshot,
        wait_for_stop,
    )
    from s3_eventstore.s3.store import S3EventStore

    try:
        store = S3EventStore.from_url(url)  # validates bucket and prefix; never opened
        server = EmbeddedS3Server(port=port)
    except MissingExtraError as err:
        raise fail(str(err), ExitCode.MISSING_EXTRA) from err
    except ConfigurationError as err:
        raise fail(str(err), ExitCode.USAGE) from err
    _check_port_free(port)
    server.start()
    try:
        loaded = 0
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            loaded = load_snapshot(server.endpoint_url, data_dir)
        ensure_bucket(server.endpoint_url, store.bucket)
        archive = LocalArchive(server.endpoint_url, store.url.rstrip("/"))
        where = f"in {data_dir}" if data_dir is not None else "in memory, for this session"
        click.echo(
            f"# local S3 server at {server.endpoint_url}, archive {archive.url}, data {where}"
            + (f" ({loaded} objects loaded)" if loaded else ""),
            err=True,
        )
        click.echo("# paste these lines into another shell; Ctrl-C here stops the server", err=True)
        click.echo("\n".join(archive.export_lines()))
        wait_for_stop()
        if data_dir is not None:
            saved = save_snapshot(server.endpoint_url, data_dir)
            click.echo(f"# saved {saved} objects to {data_dir}", err=True)
    except ConfigurationError as err:
        raise fail(str(err), ExitCode.USAGE) from err
    finally:
        server.stop()


def _check_port_free(port: int) -> None:
    """Fail clearly (exit 2) when ``port`` is taken: moto's server thread would hang."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise fail(
                f"cannot listen on 127.0.0.1:{port} ({err.strerror}): is another serve "
                "running? Give --port 0 for any free port",
                ExitCode.USAGE,
            ) from None
