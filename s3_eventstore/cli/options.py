"""What every archive command shares: configuration, error mapping, progress, output.

Configuration follows the AWS CLI: credentials from the standard chain, ``AWS_PROFILE``
and ``AWS_REGION`` (or ``--profile``/``--region``), an endpoint from ``--endpoint-url``,
``S3_EVENTSTORE_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL_S3``, and the archive as
``s3://bucket/prefix`` from ``--url`` or ``S3_EVENTSTORE_URL``.

Library errors become one line on stderr and an :class:`ExitCode`; an expected failure
never prints a traceback. rich (progress bars) is imported only when a bar is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar

import click

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.errors import (
    BucketNotFoundError,
    ConfigurationError,
    EventStoreError,
    IntegrityError,
    InvalidInputError,
    StorageError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator

    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "ArchiveConfig",
    "CliError",
    "Progress",
    "archive_options",
    "fail",
    "output_options",
    "run",
    "stdout_bytes",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound="Callable[..., Any]")

ENDPOINT_ENV = ("S3_EVENTSTORE_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
URL_ENV = "S3_EVENTSTORE_URL"


class CliError(click.ClickException):
    """An expected failure: ``error: message`` on stderr and a specific exit code.

    click reads ``exit_code`` from the class, hence one subclass per code (:func:`fail`).
    """

    exit_code = int(ExitCode.STORAGE)

    def show(self, file: Any = None) -> None:
        """Print ``error: message`` (no usage text: the arguments were fine)."""
        click.echo(f"error: {self.format_message()}", err=True)


class _UsageFailure(CliError):
    exit_code = int(ExitCode.USAGE)


class _NotFound(CliError):
    exit_code = int(ExitCode.NOT_FOUND)


class _IntegrityFailure(CliError):
    exit_code = int(ExitCode.INTEGRITY)


class _StorageFailure(CliError):
    exit_code = int(ExitCode.STORAGE)


_BY_CODE: dict[ExitCode, type[CliError]] = {
    ExitCode.USAGE: _UsageFailure,
    ExitCode.NOT_FOUND: _NotFound,
    ExitCode.INTEGRITY: _IntegrityFailure,
    ExitCode.STORAGE: _StorageFailure,
}


def fail(message: str, exit_code: ExitCode) -> CliError:
    """An error to ``raise``: ``error: message`` on stderr, then exit with ``exit_code``."""
    return _BY_CODE[exit_code](message)


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """Where the archive is and how to reach it."""

    url: str
    """``s3://bucket/prefix``."""
    endpoint_url: str | None
    """S3-compatible endpoint, ``None`` for AWS."""
    region: str | None
    """AWS region, ``None`` for the standard chain."""
    profile: str | None
    """AWS profile, ``None`` for the standard chain."""

    def open_store(self, **options: Any) -> S3EventStore:
        """A store for the archive (not yet connected; use it with ``async with``).

        Raises:
            ConfigurationError: the URL, bucket or prefix is unusable.
        """
        from s3_eventstore.s3.store import S3EventStore

        return S3EventStore.from_url(
            self.url,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            profile_name=self.profile,
            **options,
        )


def archive_options(command: _F) -> _F:
    """Add ``--url``, ``--endpoint-url``, ``--region`` and ``--profile``; pass ``config``."""

    @click.option(
        "--url",
        "-u",
        envvar=URL_ENV,
        required=True,
        metavar="s3://BUCKET/PREFIX",
        help=f"The archive. [env: {URL_ENV}]",
    )
    @click.option(
        "--endpoint-url",
        envvar=list(ENDPOINT_ENV),
        metavar="URL",
        help="S3-compatible endpoint (MinIO, R2, a local server). "
        f"[env: {', '.join(ENDPOINT_ENV)}]",
    )
    @click.option("--region", envvar="AWS_REGION", help="AWS region. [env: AWS_REGION]")
    @click.option("--profile", envvar="AWS_PROFILE", help="AWS profile. [env: AWS_PROFILE]")
    @functools.wraps(command)
    def wrapper(
        url: str,
        endpoint_url: str | None,
        region: str | None,
        profile: str | None,
        **kwargs: Any,
    ) -> Any:
        config = ArchiveConfig(url, endpoint_url or None, region or None, profile or None)
        return command(config=config, **kwargs)

    return wrapper  # type: ignore[return-value]


def output_options(command: _F) -> _F:
    """Add ``--json`` (machine-readable output) and ``--quiet`` (no progress bar)."""
    command = click.option(
        "--quiet", "-q", is_flag=True, help="No progress bar (it is also off when piped)."
    )(command)
    return click.option("--json", "as_json", is_flag=True, help="Output JSON for scripts.")(command)


def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine, turning library errors into messages and exit codes.

    Raises:
        CliError: an expected failure, with its exit code.
    """
    try:
        return asyncio.run(coroutine)
    except CliError:
        raise
    except (ConfigurationError, InvalidInputError) as err:
        raise fail(str(err), ExitCode.USAGE) from err
    except IntegrityError as err:
        raise fail(f"integrity check failed: {err}", ExitCode.INTEGRITY) from err
    except BucketNotFoundError as err:
        raise fail(f"bucket not found: {err}", ExitCode.STORAGE) from err
    except StorageError as err:
        raise fail(f"storage error: {err}", ExitCode.STORAGE) from err
    except EventStoreError as err:
        raise fail(str(err), ExitCode.STORAGE) from err


@contextlib.contextmanager
def stdout_bytes() -> Iterator[Any]:
    """stdout as a binary stream; a reader that goes away (``| head``) ends us quietly.

    On a closed pipe, further writes (and the interpreter's final flush) would raise
    ``BrokenPipeError`` and print a traceback; pointing fd 1 at ``/dev/null`` stops that.
    """
    sys.stdout.flush()  # text echoed earlier must come out first
    stream = sys.stdout.buffer
    try:
        yield stream
        stream.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(int(ExitCode.OK)) from None


class Progress:
    """A progress bar on stderr, or nothing when stderr is not a terminal or ``quiet``.

    rich is imported only when a bar is actually shown (it is a heavy import).
    """

    def __init__(self, description: str, *, total: int | None = None, quiet: bool = False) -> None:
        self._bar: Any = None
        self._task: Any = None
        if quiet or not _stderr_is_terminal():
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Self:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units done."""
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def set_total(self, total: int | None) -> None:
        """Set (or learn late) how many units there are."""
        if self._bar is not None:
            self._bar.update(self._task, total=total)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
