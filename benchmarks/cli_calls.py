"""CLI calls on a small archive: ``threads`` and ``cat THREAD``, each a process of its own.

Issue 14 (item 12): a call on a small archive should take under 0.5 s of wall time on an
idle 2-core machine. The archive is 3 threads x 3 turns (9 objects, the demo's workload)
under a prefix of its own. Every command is ``python -m s3_eventstore ...`` with the
archive's URL and endpoint, timed from the parent, interpreter start included; the
commands alternate round after round; medians. CPU time (user + system of the child) is
reported beside the wall time: it is far less sensitive to other processes on a shared
machine, and the load average before and after says how shared it was. ``--help`` and
``python -c pass`` are the floor: what a call costs before it touches S3.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.harness import Context, rounded
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

ARCHIVE = WorkloadSpec(threads=3, turns_per_thread=3, events_per_turn=20, seed=14)
"""The small archive of issue 14: 9 turn objects."""


async def _fill(ctx: Context) -> str:
    """Write the archive; return one of its thread ids."""
    threads: list[str] = []
    async with ctx.store("cli_calls") as store:
        for generated in generate_turns(ARCHIVE):
            for event in generated.events:
                await store.append(generated.thread_id, generated.turn, event)
            await store.finish_turn(generated.thread_id, generated.turn)
            if generated.thread_id not in threads:
                threads.append(generated.thread_id)
    return threads[0]


def _commands(ctx: Context, thread: str) -> dict[str, list[str]]:
    archive = ["--url", f"s3://{ctx.bucket}/{ctx.prefix('cli_calls')}"]
    archive += ["--endpoint-url", ctx.endpoint_url]
    cli = [sys.executable, "-m", "s3_eventstore"]
    return {
        "python_only": [sys.executable, "-c", "pass"],
        "help": [*cli, "--help"],
        "threads": [*cli, "threads", *archive],
        "cat": [*cli, "cat", thread, *archive],
    }


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, timeout=300, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


async def run(ctx: Context) -> dict[str, Any]:
    thread = await _fill(ctx)
    commands = _commands(ctx, thread)
    env = ctx.child_env()
    for argv in commands.values():  # compile bytecode and warm the page cache; not timed
        _run(argv, env)
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    load_before = os.getloadavg()
    names = list(commands)
    for repetition in range(ctx.sizes.cold_repetitions):
        for name in names if repetition % 2 == 0 else names[::-1]:
            seconds, cpu_seconds = _run(commands[name], env)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    load_after = os.getloadavg()
    return {
        "archive": {"threads": ARCHIVE.threads, "turns_per_thread": ARCHIVE.turns_per_thread},
        "repetitions": ctx.sizes.cold_repetitions,
        "median_wall_ms": {n: rounded(statistics.median(v) * 1000, 1) for n, v in wall.items()},
        "min_wall_ms": {n: rounded(min(v) * 1000, 1) for n, v in wall.items()},
        "median_cpu_ms": {n: rounded(statistics.median(v) * 1000, 1) for n, v in cpu.items()},
        "loadavg_1_before_after": [rounded(load_before[0], 2), rounded(load_after[0], 2)],
        "nproc": os.cpu_count(),
    }
