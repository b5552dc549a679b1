"""DuckDB over the archive: the ``events`` view, and the by-hand httpfs recipe.

:func:`connect` returns a locked-down DuckDB connection whose view :data:`EVENTS_VIEW`
(``events``) is every archived event: the Parquet tier ``publish`` committed plus the
turns not published yet (open ones with ``finished = false``), each turn once. Its
columns and rules are in :mod:`s3_eventstore.ops.columnar.view` and docs/ANALYTICS.md;
DuckDB gets no credentials and no file system (pyarrow reads S3).

:func:`events_source_sql` is the older, by-hand way, kept for users who run DuckDB
themselves with ``httpfs`` (:func:`httpfs_extension_path`): a ``SELECT`` that scans the
turn objects in place, one row per archived event (it predates open turn objects and
stubs, FORMAT.md section 11, and does not tell open turns from finished ones: prefer
:func:`connect`):

================  ===========  ====================================================
column            type         from
================  ===========  ====================================================
``thread_id``     VARCHAR      the key's ``thread=`` segment, percent-decoded
``turn``          UBIGINT      the key's 20-digit object name; NULL in a compaction segment
``event_id``      VARCHAR      the envelope
``sequence``      UBIGINT      the envelope (restarts every agent run: never order by it)
``timestamp``     VARCHAR      the envelope, exactly as written (nanoseconds, offset)
``time``          TIMESTAMPTZ  ``timestamp`` parsed (microseconds); NULL if unparsable
``type``          VARCHAR      the envelope
``event``         JSON         the whole envelope, for ``event->'usage'->>'input_tokens'``
``line``          VARCHAR      the JSON line byte for byte (``event`` is re-serialised)
``key``           VARCHAR      the object's ``s3://`` URL
================  ===========  ====================================================

Why ``read_csv`` and not ``read_json``: DuckDB's JSON reader re-serialises values
(``1.0e5`` becomes ``100000.0``, ``\\u00e9`` becomes ``é``), so the archive would not be
lossless through it; a CSV scan with a delimiter that valid JSON lines never contain
(the control byte ``\\x01``, which JSON must escape) hands every line through unchanged.
Thread ids are recovered from ``filename`` with ``url_decode`` instead of
``hive_partitioning``: DuckDB 1.5 decodes Hive values itself, older versions did not,
and decoding twice would corrupt ids containing ``%``.

The ``httpfs`` extension cannot be downloaded at run time everywhere (air-gapped hosts,
Lambda): it comes from the ``duckdb-extension-httpfs`` wheel, whose version must equal
DuckDB's, and is loaded from its file path (the wheel's layout has no platform folder,
so ``extension_directory`` cannot point at it). DuckDB checks the extension's signature
on ``LOAD``, so an unofficial build is refused.

duckdb is imported inside the functions: ``import s3_eventstore`` must stay light.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlparse

from s3_eventstore.errors import ConfigurationError, MissingExtraError
from s3_eventstore.format.keys import KeyLayout, parse_s3_url

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "EVENTS_VIEW",
    "S3Access",
    "connect",
    "events_source_sql",
    "httpfs_extension_path",
    "parse_archive_url",
    "resolve_access",
]

EVENTS_VIEW: Final = "events"
"""Name of the view :func:`connect` creates."""
_TURN_GLOB: Final = "threads/shard=*/thread=*/*.jsonl.zst"
"""No ``?`` wildcards: httpfs reads ``?`` in an ``s3://`` URL as query parameters."""
_TURN_KEY_RE: Final = r"/shard=[0-9a-f]{2}/thread=([^/]+)/([0-9]{20})\.jsonl\.zst$"
_ARCHIVE_KEY_RE: Final = (
    r"/shard=[0-9a-f]{2}/thread=([^/]+)/([0-9]{20}|seg-[0-9]{20}-[0-9]{20}-[0-9]+)\.jsonl\.zst$"
)
"""Turn objects and compaction segments (whose lines carry no turn number of their own)."""
_MAX_LINE_BYTES: Final = 16 << 20
"""DuckDB's CSV reader refuses longer lines (default 2 MB; its read buffers grow with it)."""


@dataclass(frozen=True, slots=True)
class S3Access:
    """How DuckDB reaches the bucket: resolved credentials and endpoint."""

    region: str
    """AWS region (DuckDB signs with it)."""
    key_id: str | None = None
    """Access key id; ``None`` for anonymous access."""
    secret: str | None = field(default=None, repr=False)
    """Secret access key (never shown by ``repr``)."""
    session_token: str | None = field(default=None, repr=False)
    """Session token of temporary credentials (roles, SSO)."""
    endpoint: str | None = None
    """``host[:port]`` of an S3-compatible endpoint; ``None`` for AWS."""
    use_ssl: bool = True
    """HTTPS (``False`` for an ``http://`` endpoint)."""
    url_style: str = "vhost"
    """``path`` for custom endpoints (moto, MinIO), ``vhost`` for AWS."""

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint as a URL (``None`` for AWS)."""
        if self.endpoint is None:
            return None
        return f"{'https' if self.use_ssl else 'http'}://{self.endpoint}"


def resolve_access(
    *, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None
) -> S3Access:
    """Resolve credentials with botocore's standard chain, since DuckDB has no such chain
    without the ``aws`` extension (env, ``AWS_PROFILE``, SSO, instance and task roles).

    Raises:
        ConfigurationError: ``endpoint_url`` is not an ``http(s)://host[:port]`` URL, or the
            profile does not exist.
    """
    import botocore.exceptions
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        resolved_region = region or session.get_config_variable("region") or "us-east-1"
    except botocore.exceptions.ProfileNotFound as err:
        raise ConfigurationError(str(err)) from None
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    endpoint, use_ssl, url_style = None, True, "vhost"
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigurationError(f"endpoint {endpoint_url!r} is not an http(s):// URL")
        if parsed.path not in ("", "/"):
            raise ConfigurationError(f"endpoint {endpoint_url!r} must not have a path")
        endpoint, use_ssl, url_style = parsed.netloc, parsed.scheme == "https", "path"
    return S3Access(
        region=str(resolved_region),
        key_id=frozen.access_key if frozen else None,
        secret=frozen.secret_key if frozen else None,
        session_token=frozen.token if frozen else None,
        endpoint=endpoint,
        use_ssl=use_ssl,
        url_style=url_style,
    )


def httpfs_extension_path() -> Path:
    """The ``httpfs`` extension file shipped by the ``duckdb-extension-httpfs`` wheel.

    Raises:
        ConfigurationError: the wheel is missing, or built for another DuckDB version.
    """
    try:  # the extension package ships no type information
        import duckdb

        httpfs_package: Any = importlib.import_module("duckdb_extension_httpfs")
    except ImportError as err:
        raise MissingExtraError(
            f"analytics needs duckdb and its httpfs extension ({err.name} is missing)",
            extra="analytics",
        ) from None
    version = duckdb.__version__
    root = Path(httpfs_package.__file__).parent
    candidate = root / "extensions" / f"v{version}" / "httpfs.duckdb_extension"
    if candidate.is_file():
        return candidate
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*.duckdb_extension"))
    raise ConfigurationError(
        f"duckdb-extension-httpfs has no build for DuckDB {version} (it has {found}): "
        "install matching versions, e.g. pip install 'duckdb==X' 'duckdb-extension-httpfs==X'"
    )


def events_source_sql(bucket: str, prefix: str = "", *, empty: bool = False) -> str:
    """The ``SELECT`` behind the ``events`` view, for the archive at ``bucket``/``prefix``.

    ``empty`` gives the same columns with no rows and no scan (for an empty archive).

    Raises:
        ConfigurationError: the prefix is unusable.
    """
    layout = KeyLayout.for_prefix(prefix)
    glob = f"s3://{bucket}/{layout.prefix}{_TURN_GLOB}"
    scan = (
        f"read_csv({_literal(glob)}, compression = 'zstd', header = false, "
        "columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', escape = '', "
        f"auto_detect = false, filename = true, hive_partitioning = false, "
        f"max_line_size = {_MAX_LINE_BYTES})"
    )
    if empty:
        scan = "(SELECT NULL::VARCHAR AS line, NULL::VARCHAR AS filename WHERE false)"
    pattern = _literal(_ARCHIVE_KEY_RE)
    turn_pattern = _literal(_TURN_KEY_RE)
    return f"""SELECT
    url_decode(regexp_extract(filename, {pattern}, 1)) AS thread_id,
    TRY_CAST(NULLIF(regexp_extract(filename, {turn_pattern}, 2), '') AS UBIGINT) AS turn,
    json_extract_string(line, '$.event_id') AS event_id,
    CAST(json_extract_string(line, '$.sequence') AS UBIGINT) AS sequence,
    json_extract_string(line, '$.timestamp') AS "timestamp",
    TRY_CAST(json_extract_string(line, '$.timestamp') AS TIMESTAMPTZ) AS "time",
    json_extract_string(line, '$.type') AS "type",
    CAST(line AS JSON) AS event,
    line,
    filename AS "key"
FROM {scan}
WHERE regexp_matches(filename, {pattern})"""


def connect(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    access: S3Access | None = None,
    database: str = ":memory:",
    allow_local_files: bool = False,
    published_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where ``SELECT * FROM events`` is every archived event.

    The view joins the two tiers (see :mod:`s3_eventstore.ops.columnar.view`): the Parquet
    files ``publish`` committed, and the finished turns not published yet, read through
    the store. It is a snapshot taken now: reconnect to see later turns. The connection
    cannot touch local files (unless ``allow_local_files``) and holds no credentials.

    Args:
        url: The archive, ``s3://bucket/prefix``.
        endpoint_url: S3-compatible endpoint (``http://127.0.0.1:9000``); ``None`` for AWS.
        region: AWS region; ``None`` uses the standard chain, then ``us-east-1``.
        profile: AWS profile; ``None`` uses ``AWS_PROFILE`` or the default chain.
        access: Credentials and endpoint already resolved (overrides the three above).
        database: DuckDB database path; in memory by default.
        allow_local_files: Let SQL read and write local files (trusted users only).
        published_only: Read the Parquet tier alone: no LIST of the turn objects, so turns
            not yet published are missing (dashboards run right after ``publish``).

    Raises:
        ConfigurationError: a bad URL or endpoint, or duckdb/pyarrow missing.
        IntegrityError: the publish log is corrupt or an archived object failed verification.
        StorageError: S3 failed or refused a request.
    """
    from s3_eventstore.ops.columnar.view import open_events
    from s3_eventstore.s3.store import S3EventStore

    bucket, prefix = parse_archive_url(url)
    if access is None:
        access = resolve_access(endpoint_url=endpoint_url, region=region, profile=profile)
    resolved = access

    def open_store() -> S3EventStore:
        import aioboto3

        session = aioboto3.Session(
            aws_access_key_id=resolved.key_id,
            aws_secret_access_key=resolved.secret,
            aws_session_token=resolved.session_token,
            region_name=resolved.region,
        )
        return S3EventStore(bucket, prefix, endpoint_url=resolved.endpoint_url, session=session)

    return open_events(
        open_store,
        _filesystem(access),
        view=EVENTS_VIEW,
        database=database,
        allow_local_files=allow_local_files,
        published_only=published_only,
    )


@functools.lru_cache(maxsize=8)
def _session(key_id: str | None, secret: str | None, token: str | None, region: str) -> Any:
    """One aioboto3 session per credentials: botocore loads the S3 model once per session
    (about a second of CPU), so repeated ``connect`` calls in a process share it."""
    import aioboto3

    return aioboto3.Session(
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name=region,
    )


def _filesystem(access: S3Access) -> Any:
    """pyarrow's S3 file system for the published files (exact keys, no globbing)."""
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise MissingExtraError("analytics needs pyarrow", extra="analytics") from None
    options: dict[str, Any] = {"region": access.region}
    if access.key_id is None or access.secret is None:
        options["anonymous"] = True
    else:
        options.update(
            access_key=access.key_id, secret_key=access.secret, session_token=access.session_token
        )
    if access.endpoint:
        options.update(
            endpoint_override=access.endpoint, scheme="https" if access.use_ssl else "http"
        )
    return pafs.S3FileSystem(**options)


def parse_archive_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix``, read literally (as
    :meth:`S3EventStore.from_url` reads it: ``s3://b/runs?x=1`` is prefix ``runs?x=1``).

    Raises:
        ConfigurationError: not an ``s3://`` URL with a bucket.
    """
    return parse_s3_url(url)


def _secret_sql(access: S3Access, bucket: str) -> str:
    options: list[tuple[str, Any]] = [
        ("TYPE", "s3"),
        ("REGION", access.region),
        ("URL_STYLE", access.url_style),
        ("USE_SSL", access.use_ssl),
        ("SCOPE", f"s3://{bucket}"),
    ]
    if access.key_id is not None and access.secret is not None:
        options += [("KEY_ID", access.key_id), ("SECRET", access.secret)]
    if access.session_token:
        options.append(("SESSION_TOKEN", access.session_token))
    if access.endpoint:
        options.append(("ENDPOINT", access.endpoint))
    rendered = ", ".join(
        f"{name} {'true' if value is True else 'false' if value is False else _literal(value)}"
        if name != "TYPE"
        else f"TYPE {value}"
        for name, value in options
    )
    return f"CREATE OR REPLACE SECRET s3_eventstore ({rendered})"


def _literal(value: str) -> str:
    """A SQL string literal (DuckDB: single quotes doubled, no backslash escapes)."""
    return "'" + value.replace("'", "''") + "'"
