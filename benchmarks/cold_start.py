"""Cold start of a serverless worker: the import, and the first finished turn, in a new process.

Every command is a fresh ``python`` process, timed from the parent (interpreter start
included, as a cold start is). Commands alternate round after round; medians. The
server runs elsewhere (the embedded one in its own process), outside the timed process.

- ``import aioboto3`` is the reference: a worker that archives to S3 pays it anyway.
- ``import s3_eventstore`` alone, and with aioboto3 (what the library adds on top of it).
- the first finished turn (import, store, 20 appends, ``finish_turn`` = client creation
  plus one PUT), against the bare aioboto3 equivalent (client plus one ``put_object``).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from benchmarks.harness import Context, rounded

_FIRST_TURN = """
import asyncio, sys
from s3_eventstore import AgentEventEnvelope, S3EventStore

async def main(endpoint, bucket, thread):
    async with S3EventStore(bucket, "cold", endpoint_url=endpoint, check_endpoint=False) as store:
        for seq in range(20):
            event = AgentEventEnvelope.create(
                "text_delta", {"message_id": "m1", "delta": "hello world " * 4}, sequence=seq
            )
            await store.append(thread, 1, event)
        await store.finish_turn(thread, 1)

asyncio.run(main(*sys.argv[1:4]))
"""

_BARE_PUT = """
import asyncio, sys, uuid
import aioboto3

async def main(endpoint, bucket, thread):
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint) as client:
        await client.put_object(Bucket=bucket, Key=f"bare/{thread}", Body=b"x" * 1500)

asyncio.run(main(*sys.argv[1:4]))
"""

COMMANDS: dict[str, str] = {
    "python_only": "pass",
    "import_aioboto3": "import aioboto3",
    "import_s3_eventstore": "import s3_eventstore",
    "import_s3_eventstore_and_aioboto3": "import s3_eventstore, aioboto3",
    "first_turn_s3_eventstore": _FIRST_TURN,
    "first_put_bare_aioboto3": _BARE_PUT,
}


def _run(code: str, ctx: Context, *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    if code in (_FIRST_TURN, _BARE_PUT):
        args += [ctx.endpoint_url, ctx.bucket, f"cold-{uuid.uuid4().hex}"]
    return subprocess.run(
        args, env=ctx.child_env(), capture_output=True, text=True, timeout=120, check=True
    )


def top_imports(stderr: str, count: int = 10) -> dict[str, list[dict[str, Any]]]:
    """``-X importtime`` output: the biggest modules by self time and top-level packages by
    cumulative time (microseconds)."""
    rows: list[tuple[int, int, str]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        rows.append((int(self_us), int(cumulative_us), name.rstrip()))
    top_level = [r for r in rows if not r[2].startswith("  ")]
    return {
        "by_self_us": [
            {"module": n.strip(), "self_us": s, "cumulative_us": c}
            for s, c, n in sorted(rows, reverse=True)[:count]
        ],
        "top_level_by_cumulative_us": [
            {"module": n.strip(), "cumulative_us": c}
            for s, c, n in sorted(top_level, key=lambda r: r[1], reverse=True)[:count]
        ],
    }


def _marginal_import(stderr: str) -> dict[str, Any]:
    """From ``-X importtime`` of ``import aioboto3, s3_eventstore``: what importing the
    library costs once aioboto3 is loaded, as a fraction of aioboto3's own import."""
    cumulative: dict[str, int] = {}
    for line in stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            _self, total, name = line[len("import time:") :].split("|")
            if not name.startswith("  "):
                cumulative[name.strip()] = int(total)
    aioboto3_us = cumulative.get("aioboto3", 0)
    library_us = cumulative.get("s3_eventstore", 0)
    return {
        "aioboto3_us": aioboto3_us,
        "s3_eventstore_after_aioboto3_us": library_us,
        "fraction": rounded(library_us / aioboto3_us, 4) if aioboto3_us else None,
    }


async def run(ctx: Context) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for name in names:  # warm the page cache once; not timed
        _run(COMMANDS[name], ctx)
    for repetition in range(ctx.sizes.cold_repetitions):
        order = names if repetition % 2 == 0 else names[::-1]
        for name in order:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            _run(COMMANDS[name], ctx)
            seconds[name].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    reference = medians["import_aioboto3"]
    marginal = _marginal_import(_run("import aioboto3, s3_eventstore", ctx, importtime=True).stderr)
    lib_import = top_imports(_run("import s3_eventstore", ctx, importtime=True).stderr)
    first_turn = top_imports(_run(_FIRST_TURN, ctx, importtime=True).stderr)
    return {
        "repetitions": ctx.sizes.cold_repetitions,
        "median_ms": {name: rounded(m * 1000, 1) for name, m in medians.items()},
        "min_ms": {name: rounded(min(v) * 1000, 1) for name, v in seconds.items()},
        # CPU time of the child (user + system): far less sensitive than wall time to
        # other processes competing for the cores of a shared machine.
        "median_cpu_ms": {name: rounded(m * 1000, 1) for name, m in cpu_medians.items()},
        "cpu_ratio_import_both_to_aioboto3": rounded(
            cpu_medians["import_s3_eventstore_and_aioboto3"] / cpu_medians["import_aioboto3"]
        ),
        "cpu_ratio_first_turn_to_bare_aioboto3_put": rounded(
            cpu_medians["first_turn_s3_eventstore"] / cpu_medians["first_put_bare_aioboto3"]
        ),
        "importtime_marginal": marginal,
        "ratio_import_s3_eventstore_to_aioboto3": rounded(
            medians["import_s3_eventstore"] / reference
        ),
        "ratio_import_both_to_aioboto3": rounded(
            medians["import_s3_eventstore_and_aioboto3"] / reference
        ),
        "ratio_first_turn_to_import_aioboto3": rounded(
            medians["first_turn_s3_eventstore"] / reference
        ),
        "ratio_first_turn_to_bare_aioboto3_put": rounded(
            medians["first_turn_s3_eventstore"] / medians["first_put_bare_aioboto3"]
        ),
        "importtime_import_s3_eventstore": lib_import,
        "importtime_first_turn": first_turn,
    }
