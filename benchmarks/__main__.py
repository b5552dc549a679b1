"""``python -m benchmarks [--quick] [--endpoint-url URL --bucket NAME] [--json-out PATH]``.

Runs every measurement in one process against one server, prints the table and the
targets, writes the JSON. Exit status: 0 when every measurement ran (targets missed
are reported, not failed: a benchmark is not a test), 1 when one raised.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks import (
    analytics,
    append,
    buffer_memory,
    cli_calls,
    cold_start,
    costs,
    finish_cpu,
    memory,
    peer,
    read_latency,
    report,
    requests,
    store_open,
    tradeoff,
)
from benchmarks import bytes as bytes_measurement  # not the builtin
from benchmarks.harness import Context, ServerProcess, Sizes, create_bucket, delete_prefix
from s3_eventstore.demo.workload import WorkloadSpec

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MEASUREMENTS: dict[str, Callable[[Context], Awaitable[dict[str, Any]]]] = {
    "requests": requests.run,
    "bytes": bytes_measurement.run,
    "append": append.run,
    "finish_cpu": finish_cpu.run,
    "read_latency": read_latency.run,
    "cold_start": cold_start.run,
    "cli_calls": cli_calls.run,
    "memory": memory.run,
    "buffer_memory": buffer_memory.run,
    "costs": costs.run,
    "peer": peer.run,
    "tradeoff": tradeoff.run,
    "store_open": store_open.run,
    "analytics": analytics.run,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 90 s)")
    parser.add_argument("--endpoint-url", help="an S3 endpoint (default: embedded moto server)")
    parser.add_argument("--bucket", help="existing bucket to use with --endpoint-url")
    parser.add_argument("--json-out", type=Path, default=DEFAULT_JSON, help="JSON results path")
    parser.add_argument("--markdown-out", type=Path, help="also write the Markdown table here")
    parser.add_argument(
        "--only", help=f"comma-separated subset of: {', '.join(MEASUREMENTS)}", default=""
    )
    parser.add_argument("--threads", type=int, help="workload threads (default 200; quick 20)")
    parser.add_argument("--turns", type=int, default=10, help="turns per thread")
    parser.add_argument("--events", type=int, default=20, help="events per turn")
    parser.add_argument("--text-bytes", type=int, default=24, help="typical text delta length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-repetitions", type=int, help="repetitions of the side-by-side run (3; quick 2)"
    )
    parser.add_argument(
        "--analytics-threads",
        type=int,
        help="analytics workload threads of 10 turns x 20 events (default 500: 100k events)",
    )
    args = parser.parse_args(argv)
    if (args.endpoint_url is None) != (args.bucket is None):
        parser.error("--endpoint-url and --bucket go together")
    if args.endpoint_url and not args.endpoint_url.startswith(("http://127.", "http://localhost")):
        parser.error("benchmarks only target loopback endpoints (http://127.x or localhost)")
    unknown = set(filter(None, args.only.split(","))) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    return args


async def run_all(ctx: Context, names: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": report.machine()}
    results["run"] = {
        "quick": ctx.sizes.quick,
        "endpoint": ctx.endpoint_url,
        "embedded_server": ctx.embedded,
        "measurements": names,
    }
    durations: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in names:
        ctx.log(f"== {name}")
        started = time.perf_counter()
        try:
            results[name] = await MEASUREMENTS[name](ctx)
        except Exception as err:  # noqa: BLE001 - report it, run the other measurements
            traceback.print_exc()
            errors[name] = f"{type(err).__name__}: {err}"
        durations[name] = round(time.perf_counter() - started, 1)
        ctx.log(f"   {name}: {durations[name]} s")
        if name not in ("costs",):
            if ctx.embedded:
                await ctx.reset()
            elif name in ("requests", "read_latency"):
                await delete_prefix(ctx, "requests" if name == "requests" else "read")
    results["run"]["loadavg_at_end"] = report.machine()["loadavg_1_5_15"]
    results["run"]["seconds"] = durations
    results["run"]["errors"] = errors
    results["targets"] = report.targets(results)
    return results


async def main_async(args: argparse.Namespace) -> int:
    workload = WorkloadSpec(
        threads=args.threads or (20 if args.quick else 200),
        turns_per_thread=args.turns,
        events_per_turn=args.events,
        text_bytes=args.text_bytes,
        seed=args.seed,
    )
    sizes = Sizes.for_run(quick=args.quick, workload=workload)
    if args.peer_repetitions:
        sizes.peer_repetitions = args.peer_repetitions
    names = [n for n in MEASUREMENTS if not args.only or n in args.only.split(",")]
    started = time.perf_counter()
    with ExitStack() as stack:
        if args.endpoint_url:
            ctx = Context(args.endpoint_url, args.bucket, sizes, embedded=False)
        else:
            server = stack.enter_context(ServerProcess())
            ctx = Context(server.endpoint_url, f"bench-{uuid.uuid4().hex[:12]}", sizes, True)
            ctx.server_pid = server.pid
            await create_bucket(ctx.endpoint_url, ctx.bucket, ctx.session())
        ctx.log(f"benchmarks against {ctx.endpoint_url}, bucket {ctx.bucket}")
        if args.analytics_threads:
            ctx.shared["analytics_threads"] = args.analytics_threads
        results = await run_all(ctx, names)
    results["run"]["total_seconds"] = round(time.perf_counter() - started, 1)
    print(report.render_text(results))
    report.write_json(results, args.json_out)
    print(f"\nJSON written to {args.json_out}", file=sys.stderr)
    if args.markdown_out:
        args.markdown_out.parent.mkdir(parents=True, exist_ok=True)
        args.markdown_out.write_text(report.render_markdown(results) + "\n")
    return 1 if results["run"]["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
