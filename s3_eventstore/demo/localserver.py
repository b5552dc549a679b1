"""A local archive to try the CLI on: the embedded S3 server, served until stopped.

``s3-eventstore serve`` and ``s3-eventstore demo --keep`` use it. :class:`LocalArchive`
says where the archive is and prints the ``export`` lines a shell needs to reach it
(URL, endpoint, the dummy credentials the embedded server accepts). The server keeps
its buckets in memory; :func:`save_snapshot` and :func:`load_snapshot` keep them in a
folder between sessions (each object's latest version, body and user metadata).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import shlex
import shutil
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.demo.embedded import CREDENTIALS
from s3_eventstore.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "LocalArchive",
    "ensure_bucket",
    "load_snapshot",
    "save_snapshot",
    "wait_for_stop",
]

DEFAULT_PORT: Final = 5077
"""Port ``serve`` listens on by default (``--port 0`` picks a free one)."""
DEFAULT_URL: Final = "s3://local-archive/agents"
"""The archive ``serve`` creates by default."""
_SNAPSHOT: Final = "snapshot"
_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class LocalArchive:
    """An archive on a local S3 endpoint, and how a shell reaches it."""

    endpoint_url: str
    """``http://127.0.0.1:PORT``."""
    url: str
    """``s3://bucket/prefix``."""

    def environment(self) -> dict[str, str]:
        """The variables the CLI and the AWS chain read, for this archive."""
        return {
            "S3_EVENTSTORE_URL": self.url,
            "S3_EVENTSTORE_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": CREDENTIALS["region_name"],
        }

    def export_lines(self) -> list[str]:
        """``export NAME=value`` lines to paste into a shell (and ``unset AWS_PROFILE``,
        whose credentials would win over these)."""
        lines = [
            f"export {name}={shlex.quote(value)}" for name, value in self.environment().items()
        ]
        return [*lines, "unset AWS_PROFILE"]


def _client(endpoint_url: str) -> Any:
    boto3: Any = importlib.import_module("boto3")  # ships no type information
    return boto3.client("s3", endpoint_url=endpoint_url, **CREDENTIALS)


def _list_all(client: Any, bucket: str) -> list[dict[str, Any]]:
    """Every object of ``bucket`` (ListObjectsV2, page by page)."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"Bucket": bucket}
    while True:
        page = client.list_objects_v2(**params)
        items.extend(page.get("Contents", []))
        if not page.get("IsTruncated"):
            return items
        params["ContinuationToken"] = page["NextContinuationToken"]


def ensure_bucket(endpoint_url: str, bucket: str) -> None:
    """Create ``bucket`` on the local server unless it exists."""
    client = _client(endpoint_url)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)


def save_snapshot(endpoint_url: str, directory: Path) -> int:
    """Write every bucket and object of the local server under ``directory``; returns the
    number of objects. The previous snapshot is replaced only once the new one is whole.

    Raises:
        ConfigurationError: ``directory`` cannot be written.
    """
    client = _client(endpoint_url)
    fresh = directory / f".{_SNAPSHOT}-new"
    try:
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        count = 0
        buckets: list[dict[str, Any]] = []
        for bucket in client.list_buckets().get("Buckets", []):
            name = str(bucket["Name"])
            objects: list[dict[str, Any]] = []
            folder = fresh / hashlib.sha256(name.encode()).hexdigest()[:16]
            folder.mkdir()
            for item in _list_all(client, name):
                response = client.get_object(Bucket=name, Key=item["Key"])
                body = response["Body"].read()
                file_name = f"{len(objects):08d}"
                (folder / file_name).write_bytes(body)
                objects.append(
                    {
                        "key": item["Key"],
                        "file": file_name,
                        "metadata": response.get("Metadata", {}),
                        "content_type": response.get("ContentType"),
                    }
                )
            buckets.append({"name": name, "folder": folder.name, "objects": objects})
            count += len(objects)
        (fresh / "index.json").write_text(
            json.dumps({"format": _FORMAT, "buckets": buckets}), encoding="utf-8"
        )
        current, old = directory / _SNAPSHOT, directory / f".{_SNAPSHOT}-old"
        shutil.rmtree(old, ignore_errors=True)
        if current.exists():
            current.rename(old)
        fresh.rename(current)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise ConfigurationError(f"cannot save the local archive to {directory}: {err}") from err
    return count


def load_snapshot(endpoint_url: str, directory: Path) -> int:
    """Put every bucket and object of a snapshot in ``directory`` (if any) on the local
    server; returns the number of objects.

    Raises:
        ConfigurationError: the snapshot is unreadable.
    """
    root = directory / _SNAPSHOT
    if not (root / "index.json").is_file():
        return 0
    client = _client(endpoint_url)
    try:
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
        if index.get("format") != _FORMAT:
            raise ConfigurationError(f"{root} holds a snapshot of unknown format")
        count = 0
        for bucket in index["buckets"]:
            ensure_bucket(endpoint_url, bucket["name"])
            for item in bucket["objects"]:
                extra = {"ContentType": item["content_type"]} if item.get("content_type") else {}
                client.put_object(
                    Bucket=bucket["name"],
                    Key=item["key"],
                    Body=(root / bucket["folder"] / item["file"]).read_bytes(),
                    Metadata=item["metadata"],
                    **extra,
                )
                count += 1
    except (OSError, KeyError, TypeError, ValueError) as err:
        if isinstance(err, ConfigurationError):
            raise
        raise ConfigurationError(f"cannot load the local archive from {root}: {err}") from err
    return count


def wait_for_stop() -> None:
    """Block until Ctrl-C, SIGTERM or SIGHUP."""
    stop = threading.Event()
    handled = [signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled}
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
