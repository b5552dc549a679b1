"""What every measurement shares: the server, the run's sizes, a fresh store, statistics.

The embedded moto server runs in a child process of its own by default (not in a thread
of the benchmark process), so the client and the server do not share one GIL: on a
2-core machine that is the fairest layout for a single-process Python S3 server.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3_eventstore.demo.workload import WorkloadSpec

_SERVER_SCRIPT = """
import sys
from s3_eventstore.demo.embedded import EmbeddedS3Server
server = EmbeddedS3Server().start()
print(server.endpoint_url, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin (or dies)
server.stop()
"""


@dataclass(slots=True)
class Sizes:
    """How big each measurement is; ``quick`` shrinks everything for the CI smoke run."""

    quick: bool
    workload: WorkloadSpec
    read_turns: int
    read_concurrency: tuple[int, ...]
    read_repetitions: int
    point_repetitions: int
    append_turns: int
    append_repetitions: int
    finish_cpu_turns: int
    finish_cpu_repetitions: int
    levels: tuple[int, ...]
    level_turns: int
    cold_repetitions: int
    open_turns: int
    big_turn_bytes: int
    big_turn_fallback_bytes: int
    peer_repetitions: int = 3
    """Repetitions of the side-by-side comparison (each: write, reads, for all three)."""

    @classmethod
    def for_run(cls, *, quick: bool, workload: WorkloadSpec) -> Sizes:
        if quick:
            return cls(
                quick=True,
                workload=workload,
                read_turns=60,
                read_concurrency=(1, 8, 32, 64),
                read_repetitions=2,
                point_repetitions=3,
                append_turns=100,
                append_repetitions=3,
                finish_cpu_turns=50,
                finish_cpu_repetitions=3,
                levels=(1, 3, 6, 9, 19),
                level_turns=40,
                cold_repetitions=3,
                open_turns=500,
                big_turn_bytes=16 << 20,
                big_turn_fallback_bytes=16 << 20,
                peer_repetitions=2,
            )
        return cls(
            quick=False,
            workload=workload,
            read_turns=1000,
            read_concurrency=(1, 8, 32, 64),
            read_repetitions=3,
            point_repetitions=15,
            append_turns=1000,
            append_repetitions=9,
            finish_cpu_turns=400,
            finish_cpu_repetitions=9,
            levels=(1, 3, 6, 9, 19),
            level_turns=2000,
            cold_repetitions=12,
            open_turns=10_000,
            big_turn_bytes=1 << 30,
            big_turn_fallback_bytes=128 << 20,
        )


@dataclass(slots=True)
class Context:
    """The server every measurement talks to, and the run's sizes."""

    endpoint_url: str
    bucket: str
    sizes: Sizes
    embedded: bool
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    server_pid: int = 0
    """Process id of the embedded server (0 for a user-supplied endpoint)."""
    shared: dict[str, Any] = field(default_factory=dict)
    """Figures one measurement hands to a later one (e.g. bytes stored by ``requests``)."""
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)

    def prefix(self, name: str) -> str:
        """A prefix of its own for one measurement, so runs never collide."""
        return f"bench-{self.run_id}/{name}"

    def session(self) -> Any:
        """An aioboto3 session: fixed credentials for the embedded server, else the AWS chain."""
        import aioboto3

        return aioboto3.Session(**CREDENTIALS) if self.embedded else aioboto3.Session()

    def store(self, name: str, **options: Any) -> S3EventStore:
        """A new store (its own client, empty caches) under this measurement's prefix.

        The endpoint probe is off: the figures stand for AWS, where it never runs (one
        probe per endpoint per process would add three requests to the first write)."""
        options.setdefault("check_endpoint", False)
        return S3EventStore(
            self.bucket,
            self.prefix(name),
            endpoint_url=self.endpoint_url,
            session=self.session(),
            **options,
        )

    def child_env(self) -> dict[str, str]:
        """Environment for child processes that talk to the server."""
        env = dict(os.environ)
        # Compiled bytecode, as a deployed package has it, without writing into the tree:
        # this machine sets PYTHONDONTWRITEBYTECODE, which would recompile every import.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "s3es-bench-pycache")
        if self.embedded:
            env.update(
                AWS_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
                AWS_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
                AWS_DEFAULT_REGION=CREDENTIALS["region_name"],
            )
        return env

    async def reset(self) -> None:
        """Empty the embedded server between measurements (the server's memory is not what
        the next measurement is about), then create the run's bucket again."""
        if not self.embedded:
            return
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):  # noqa: ASYNC210 - loopback, instant
            pass
        await create_bucket(self.endpoint_url, self.bucket, self.session())


class ServerProcess:
    """The embedded moto server (127.0.0.1, free port) in a child process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""
        self.pid = 0

    def __enter__(self) -> Self:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            process.kill()
            raise RuntimeError(f"embedded server did not start: {line!r}")
        self.endpoint_url = line
        self.pid = process.pid
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


async def create_bucket(endpoint_url: str, bucket: str, session: Any) -> None:
    """Create the run's bucket on the embedded server."""
    async with session.client("s3", endpoint_url=endpoint_url) as admin:
        await admin.create_bucket(Bucket=bucket)


async def delete_prefix(ctx: Context, name: str) -> int:
    """Delete a measurement's objects on a user-supplied server (bounded: its own keys)."""
    async with ctx.session().client("s3", endpoint_url=ctx.endpoint_url) as admin:
        deleted = 0
        paginator = admin.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=ctx.bucket, Prefix=ctx.prefix(name) + "/"):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                await admin.delete_objects(Bucket=ctx.bucket, Delete={"Objects": keys})
                deleted += len(keys)
        return deleted


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99 (inclusive method), plus the count; values in the unit given."""
    if not values:
        return {"n": 0, "p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    if len(values) == 1:
        return {"n": 1, "p50": values[0], "p90": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rounded(value: float, digits: int = 3) -> float:
    """Round for the JSON (figures are noisy beyond a few digits anyway)."""
    return round(value, digits)
