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
import re
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlparse

import click
import orjson

from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.cli.startup import startup_allocations
from s3_eventstore.errors import (
    BucketNotFoundError,
    ConfigurationError,
    EventStoreError,
    IntegrityError,
    InvalidInputError,
    MissingExtraError,
    StorageError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterator

    from s3_eventstore.s3.store import S3EventStore

__all__ = [
    "ArchiveConfig",
    "CliError",
    "Progress",
    "archive_options",
    "check_endpoint_url",
    "confirm",
    "fail",
    "optional_archive_options",
    "output_options",
    "plural",
    "printable",
    "read_thread_ids",
    "run",
    "stdout_bytes",
    "thread_ids_option",
    "threads_not_found",
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


class _MissingExtra(CliError):
    exit_code = int(ExitCode.MISSING_EXTRA)


class _QueryFailure(CliError):
    exit_code = int(ExitCode.QUERY)


_BY_CODE: dict[ExitCode, type[CliError]] = {
    ExitCode.USAGE: _UsageFailure,
    ExitCode.NOT_FOUND: _NotFound,
    ExitCode.INTEGRITY: _IntegrityFailure,
    ExitCode.STORAGE: _StorageFailure,
    ExitCode.MISSING_EXTRA: _MissingExtra,
    ExitCode.QUERY: _QueryFailure,
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
    checksum_headers: bool = True
    """Send ``x-amz-checksum-sha256`` on uploads (``--no-checksum-headers`` turns it off)."""

    @contextlib.asynccontextmanager
    async def open_store(self, **options: Any) -> AsyncIterator[S3EventStore]:
        """The archive's store, its client created (``async with config.open_store()``);
        closed when the block ends.

        Creating the first client is most of a small command's time (imports, botocore's
        model): it runs inside :func:`.startup.startup_allocations`.

        Raises:
            ConfigurationError: the URL, bucket or prefix is unusable.
            StorageError: the client could not be created.
        """
        with startup_allocations():
            from s3_eventstore.s3.store import S3EventStore

            store = S3EventStore.from_url(
                self.url,
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                profile_name=self.profile,
                checksum_headers=self.checksum_headers,
                **options,
            )
            await store.open()
        async with store:
            yield store


def check_endpoint_url(value: str | None) -> str | None:
    """``value`` if it is an ``http(s)://HOST[:PORT]`` URL (or empty: ``None``).

    Raises:
        click.BadParameter: anything else (a usage error, exit 2), with a hint when
            only the scheme is missing.
    """
    if not value:
        return None
    parsed = urlparse(value)
    well_formed = parsed.scheme in ("http", "https") and parsed.netloc
    if well_formed and parsed.path in ("", "/") and not (parsed.query or parsed.fragment):
        return value
    hint = f" (did you mean http://{value}?)" if "://" not in value else ""
    raise click.BadParameter(f"{value!r} is not an http(s)://HOST[:PORT] URL{hint}")


def _endpoint_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    return check_endpoint_url(value)


def _archive_options(*, required: bool) -> Callable[[_F], _F]:
    url_help = f"The archive. [env: {URL_ENV}]"
    if not required:
        url_help = f"The archive (default: a new one on an embedded server). [env: {URL_ENV}]"

    def decorate(command: _F) -> _F:
        @click.option(
            "--url",
            "-u",
            envvar=URL_ENV,
            required=required,
            metavar="s3://BUCKET/PREFIX",
            help=url_help,
        )
        @click.option(
            "--endpoint-url",
            envvar=list(ENDPOINT_ENV),
            metavar="URL",
            callback=_endpoint_callback,
            help="S3-compatible endpoint, http(s)://HOST[:PORT] (MinIO, R2, a local server). "
            f"[env: {', '.join(ENDPOINT_ENV)}]",
        )
        @click.option("--region", envvar="AWS_REGION", help="AWS region. [env: AWS_REGION]")
        @click.option("--profile", envvar="AWS_PROFILE", help="AWS profile. [env: AWS_PROFILE]")
        @click.option(
            "--checksum-headers/--no-checksum-headers",
            default=True,
            help="Send x-amz-checksum-sha256 on uploads; turn off for S3-compatible servers "
            "that answer 400 to checksum headers (doctor tells). Reads verify SHA-256 anyway.",
        )
        @functools.wraps(command)
        def wrapper(
            url: str | None,
            endpoint_url: str | None,
            region: str | None,
            profile: str | None,
            checksum_headers: bool,
            **kwargs: Any,
        ) -> Any:
            config = ArchiveConfig(
                url or "", endpoint_url or None, region or None, profile or None, checksum_headers
            )
            return command(config=config, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


archive_options = _archive_options(required=True)
"""Add ``--url`` (required), ``--endpoint-url``, ``--region``, ``--profile`` and
``--checksum-headers/--no-checksum-headers``; pass
``config``. Every command that reads or writes an archive takes exactly these."""
optional_archive_options = _archive_options(required=False)
"""The same options with ``--url`` optional (``config.url`` is then ``""``): ``demo``."""


def thread_ids_option(command: _F) -> _F:
    """Add ``--threads-from FILE`` (the ids :func:`read_thread_ids` reads)."""
    return click.option(
        "--threads-from",
        type=click.File("rb"),
        metavar="FILE",
        help="Also take thread ids from FILE ('-': stdin): NUL-separated (threads -0), JSON "
        "lines (threads --json), or one per line, each line kept exactly.",
    )(command)


def read_thread_ids(stream: IO[bytes] | None) -> list[str]:
    """Thread ids from a ``--threads-from`` stream, every id exactly as written.

    NUL-separated when the input holds a NUL byte (``threads -0``); JSON lines with a
    ``thread_id`` when every line is such an object (``threads --json``); else one id per
    line, nothing trimmed but the newline. Empty entries are skipped.

    Raises:
        click.UsageError: the input is not UTF-8, or a JSON line has no string thread_id.
    """
    if stream is None:
        return []
    data = stream.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise click.UsageError(f"--threads-from: not UTF-8 text ({err.reason})") from None
    if "\0" in text:
        return [item for item in text.split("\0") if item]
    lines = [line for line in text.split("\n") if line]
    records = [_json_record(line) for line in lines]
    if lines and all(record is not None for record in records):
        ids: list[str] = []
        for record in records:
            thread_id = record.get("thread_id") if record is not None else None
            if not isinstance(thread_id, str):
                raise click.UsageError("--threads-from: a JSON line has no string thread_id")
            ids.append(thread_id)
        return ids
    return lines


def _json_record(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


_ESCAPED = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
"""What text output escapes: the backslash itself (so an escape is never ambiguous), C0/C1
control characters, line and paragraph separators, and the invisible format characters a
terminal renders as nothing or uses to reorder text (zero-width, bidirectional overrides
and isolates such as U+202E, BOM)."""
_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with control, invisible and bidirectional characters escaped (``\\x1b``,
    ``\\n``, ``\\u202e``) and backslashes doubled, for a terminal.

    Text output is for people: a thread id holding ESC, BEL or a right-to-left override
    must not drive the terminal, and two different ids never print alike. Scripts read ids
    exactly from ``--json`` or ``-0``.
    """
    return _ESCAPED.sub(
        lambda match: (
            _NAMED.get(match.group(), f"\\x{ord(match.group()):02x}")
            if ord(match.group()) < 0x100
            else f"\\u{ord(match.group()):04x}"
        ),
        text,
    )


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 thread"``, ``"2 threads"``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def threads_not_found(thread_ids: list[str]) -> CliError:
    """The error (exit 3) for named threads that do not exist."""
    names = ", ".join(repr(t) for t in thread_ids)
    what = "thread" if len(thread_ids) == 1 else "threads"
    return fail(f"{what} not found: {names}", ExitCode.NOT_FOUND)


def confirm(question: str) -> None:
    """Ask on stderr (stdout stays clean for ``--json``); abort (exit 1) unless yes."""
    click.confirm(question, abort=True, err=True)


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
    except MissingExtraError as err:
        raise fail(str(err), ExitCode.MISSING_EXTRA) from err
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
