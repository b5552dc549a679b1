"""The main job: replay a realistic multi-thread agent workload, read it all back, check it.

``s3-eventstore demo`` runs it against an embedded S3 server (no AWS account) or any
endpoint. Every call made on the S3 store is mirrored on the in-memory reference
store, and the final state of both must be identical, turn for turn and byte for byte.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.memory import InMemoryEventStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3_eventstore.s3.store import S3EventStore

__all__ = ["DemoReport", "run_demo"]


@dataclass(slots=True)
class DemoReport:
    """What the demo did and measured."""

    endpoint: str
    bucket: str
    prefix: str
    threads: int = 0
    turns_finished: int = 0
    turns_open: int = 0
    events: int = 0
    objects: int = 0
    json_bytes: int = 0
    stored_bytes: int = 0
    probe_requests: dict[str, int] = field(default_factory=dict)
    """The conditional-write probe's requests (empty when the endpoint is not probed or
    was already probed in this process): kept apart so ``write_requests`` is the turns'."""
    write_requests: dict[str, int] = field(default_factory=dict)
    read_requests: dict[str, int] = field(default_factory=dict)
    write_seconds: float = 0.0
    read_seconds: float = 0.0
    finish_latency_ms_p50: float = 0.0
    finish_latency_ms_p99: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    seed: int | None = None
    """The workload's seed (the same seed writes the same thread ids)."""

    @property
    def ratio(self) -> float:
        """Compact JSON bytes per stored byte."""
        return self.json_bytes / self.stored_bytes if self.stored_bytes else 0.0

    @property
    def ok(self) -> bool:
        """True when everything read back equals what was written."""
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``--json``."""
        data = asdict(self)
        data["compression_ratio"] = round(self.ratio, 3)
        data["ok"] = self.ok
        return data

    def render(self) -> str:
        """A short human-readable report."""
        lines = [
            f"archive        s3://{self.bucket}/{self.prefix} at {self.endpoint}",
            f"threads        {self.threads}",
            f"turns          {self.turns_finished} finished, {self.turns_open} open",
            f"events         {self.events}",
            f"objects        {self.objects} (one per finished turn)",
            f"bytes as JSON  {self.json_bytes:,}",
            f"bytes stored   {self.stored_bytes:,}",
            f"compression    {self.ratio:.2f}x",
            *([f"probe requests {_requests(self.probe_requests)}"] if self.probe_requests else []),
            f"write requests {_requests(self.write_requests)}",
            f"read requests  {_requests(self.read_requests)}",
            (
                f"write phase    {self.write_seconds:.2f} s "
                f"(finish_turn p50 {self.finish_latency_ms_p50:.1f} ms, "
                f"p99 {self.finish_latency_ms_p99:.1f} ms)"
            ),
            f"read phase     {self.read_seconds:.2f} s",
            "check          "
            + ("OK: every thread reads back exactly as written" if self.ok else "FAILED"),
        ]
        lines.extend(f"  mismatch: {m}" for m in self.mismatches[:20])
        return "\n".join(lines)


def _requests(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} (" + ", ".join(f"{op} {n}" for op, n in counts.items()) + ")"


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


async def run_demo(
    store: S3EventStore,
    spec: WorkloadSpec,
    *,
    endpoint: str,
    concurrency: int = 16,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Write ``spec``'s workload through ``store`` (last turn of every 4th thread left open,
    as in a confirmation pause), then read every thread back and compare with the
    in-memory reference store fed the very same calls."""
    say = progress or (lambda _message: None)
    reference = InMemoryEventStore()
    report = DemoReport(endpoint, store.bucket, store.layout.prefix, seed=spec.seed)
    turns = list(generate_turns(spec))
    threads = list(dict.fromkeys(turn.thread_id for turn in turns))
    left_open = {(t, spec.turns_per_thread) for i, t in enumerate(threads) if i % 4 == 3}
    by_thread: dict[str, list[Any]] = {thread: [] for thread in threads}
    for generated in turns:
        by_thread[generated.thread_id].append(generated)
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def replay_thread(thread_id: str) -> None:
        async with semaphore:
            for generated in by_thread[thread_id]:
                for event in generated.events:
                    await store.append(thread_id, generated.turn, event)
                    await reference.append(thread_id, generated.turn, event)
                if (thread_id, generated.turn) in left_open:
                    continue
                started = time.perf_counter()
                await store.finish_turn(thread_id, generated.turn)
                latencies.append((time.perf_counter() - started) * 1000)
                await reference.finish_turn(thread_id, generated.turn)

    if store.probe_wanted:
        say("probing the endpoint's conditional writes (once per endpoint per process)")
        store.requests.reset()
        await store.probe_endpoint()
        report.probe_requests = store.requests.snapshot()
    say(f"writing {len(turns)} turns of {len(threads)} threads to {store.url}")
    store.requests.reset()
    started = time.perf_counter()
    await asyncio.gather(*(replay_thread(thread) for thread in threads))
    report.write_seconds = time.perf_counter() - started
    report.write_requests = store.requests.snapshot()

    say("reading every thread back")
    store.requests.reset()
    started = time.perf_counter()
    for thread_id in threads:
        expected = await reference.get_turns(thread_id)
        actual = await store.get_turns(thread_id)
        if actual != expected:
            report.mismatches.append(f"get_turns({thread_id!r}) differs from the reference")
        count = await store.event_count(thread_id)
        if count != await reference.event_count(thread_id):
            report.mismatches.append(f"event_count({thread_id!r}) = {count}")
        middle = count // 2
        if await store.get_events_since(thread_id, middle) != (
            await reference.get_events_since(thread_id, middle)
        ):
            report.mismatches.append(f"get_events_since({thread_id!r}, {middle}) differs")
        report.events += count
        report.turns_finished += sum(t.finished for t in actual)
        report.turns_open += sum(not t.finished for t in actual)
        report.json_bytes += sum(e.wire_size + 1 for t in actual if t.finished for e in t.events)
    report.read_seconds = time.perf_counter() - started
    report.read_requests = store.requests.snapshot()

    # Only this run's threads: the archive may hold other data (a served local archive).
    for thread_id in threads:
        listing = await store.objects.list_all(store.layout.thread_folder(thread_id))
        report.objects += len(listing)
        report.stored_bytes += sum(obj.size for obj in listing)
    if report.objects != report.turns_finished:
        report.mismatches.append(
            f"{report.objects} objects in the bucket for {report.turns_finished} finished turns"
        )
    report.threads = len(threads)
    report.finish_latency_ms_p50 = _percentile(latencies, 0.50)
    report.finish_latency_ms_p99 = _percentile(latencies, 0.99)
    for thread_id, turn in left_open:  # leave nothing buffered behind: these turns stay open
        await store.discard_turn(thread_id, turn)
    return report
