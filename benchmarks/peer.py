"""Side by side with the peer: strands-agents' ``S3SessionManager`` and a naive baseline.

Three ways to archive the same agent workload in S3, on the same server:

* **ours**: ``S3EventStore`` at default settings, one store per session (a program opens
  one per session, per request or per worker), ``append`` per event, ``finish_turn`` per
  turn. Reads: a fresh store per one-session read; one store for the all-session read
  (``get_turns`` of every session, gathered).
* **strands**: ``strands.session.S3SessionManager`` (strands-agents, from PyPI), one
  manager per session as its API requires (it creates its own boto3 client, its
  default), the session and agent records it creates, then one ``create_message`` per
  event - the requests an agent loop causes at the least (a real agent also calls
  ``sync_agent`` after each invocation, which adds a GET and a PUT when its state
  changed: not counted here, in the peer's favour). Each event is one strands message:
  the envelope's JSON object itself, stored by strands' own serialisation (a
  ``SessionMessage`` record, ``json.dumps(indent=2)``): the same information as ours,
  in the smallest form strands takes (wrapping it as ``{"role": ..., "content": [...]}``
  would add ~90 B per message, in our favour).
  Reads: what restoring a session does - a fresh manager (GET ``session.json``),
  ``read_agent``, ``list_messages`` (LIST + one GET per message in its thread pool); the
  all-session read does that for every session, one after another.
* **naive**: boto3, one client for the process, one ``put_object`` per turn of plain
  JSON (an array of the turn's envelopes, as sent); reads LIST a session and GET each turn.

Every repetition resets the server and gives each side a bucket of its own (moto's LIST
cost grows with the bucket), runs the three sides in an order that rotates from one
repetition to the next, and the figures are medians of the per-repetition ratios.
Requests are counted at the HTTP level the same way for all three: botocore's
``before-send`` event, which fires once per HTTP attempt (retries included).
Stored bytes = the bytes LIST reports + user metadata (``x-amz-meta-*`` names and values,
which S3 stores and bills with the object), from a HEAD of every object in the first
repetition. Write and read CPU are this process's CPU time (``time.process_time``, all
threads); the server runs in a child process.

``python -m benchmarks --only peer`` runs it alone; ``--quick`` shrinks it to a smoke run.
When strands-agents is not installed its column says so and the rest still runs.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from benchmarks.harness import Context, create_bucket, rounded
from s3_eventstore import S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

if TYPE_CHECKING:
    from collections.abc import Callable

    from s3_eventstore.demo.workload import GeneratedTurn

NAME = "peer"
SIDES = ("ours", "strands", "naive")
AGENT_ID = "default"


@dataclass(slots=True)
class Phase:
    """What one side spent on one phase of one repetition."""

    wall: float = 0.0
    cpu: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    events: int = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


class HttpCounter:
    """Counts HTTP attempts by operation from botocore's ``before-send`` event."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        self.counts[event_name.rsplit(".", 1)[-1]] += 1

    def attach(self, events: Any) -> None:
        events.register("before-send.s3", self)

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


def strands_version() -> str | None:
    """The installed strands-agents version, ``None`` when it is not installed."""
    from importlib import metadata

    try:
        version = metadata.version("strands-agents")
        import strands.session.s3_session_manager  # noqa: F401 - importable, not just listed
    except (metadata.PackageNotFoundError, ImportError):
        return None
    return version


def sessions_of(turns: list[GeneratedTurn]) -> dict[str, list[GeneratedTurn]]:
    grouped: dict[str, list[GeneratedTurn]] = {}
    for turn in turns:
        grouped.setdefault(turn.thread_id, []).append(turn)
    return grouped


class Ours:
    """``S3EventStore`` at default settings."""

    name = "ours"

    def __init__(self, ctx: Context, bucket: str) -> None:
        self.ctx = ctx
        self.bucket = bucket
        self.counter = HttpCounter()

    def store(self) -> S3EventStore:
        # Default settings: credentials from the environment (set by ``run``), no session.
        return S3EventStore(
            self.bucket, "agents", endpoint_url=self.ctx.endpoint_url, check_endpoint=False
        )

    async def _closed(self, store: S3EventStore) -> None:
        for operation, count in store.requests.snapshot().items():
            self.counter.counts[operation] += count
        await store.close()

    async def write(self, sessions: dict[str, list[GeneratedTurn]]) -> None:
        for thread_id, turns in sessions.items():
            store = self.store()
            try:
                for generated in turns:
                    for event in generated.events:
                        await store.append(thread_id, generated.turn, event)
                    await store.finish_turn(thread_id, generated.turn)
            finally:
                await self._closed(store)

    async def read_one(self, thread_id: str) -> int:
        store = self.store()
        try:
            return sum(len(t.events) for t in await store.get_turns(thread_id))
        finally:
            await self._closed(store)

    async def read_all(self, thread_ids: list[str]) -> int:
        store = self.store()
        try:
            results = await asyncio.gather(*(store.get_turns(t) for t in thread_ids))
            return sum(len(turn.events) for turns in results for turn in turns)
        finally:
            await self._closed(store)


class Strands:
    """strands-agents' ``S3SessionManager`` (synchronous; runs on this thread)."""

    name = "strands"

    def __init__(self, ctx: Context, bucket: str) -> None:
        from strands.session.s3_session_manager import S3SessionManager
        from strands.types.session import SessionAgent, SessionMessage

        self._manager_class = S3SessionManager
        self._agent_class = SessionAgent
        self._message_class = SessionMessage
        self.ctx = ctx
        self.bucket = bucket
        self.counter = HttpCounter()

    def manager(self, session_id: str) -> Any:
        import boto3

        # What S3SessionManager does by default (a new boto3.Session per manager), with
        # the counting hook on that session's events so the constructor's requests count.
        session = boto3.Session(**CREDENTIALS)
        self.counter.attach(session.events)
        return self._manager_class(
            session_id,
            self.bucket,
            "agents",
            boto_session=session,
            endpoint_url=self.ctx.endpoint_url,
        )

    async def write(self, sessions: dict[str, list[GeneratedTurn]]) -> None:
        for session_id, turns in sessions.items():
            manager = self.manager(session_id)
            manager.create_agent(
                session_id, self._agent_class(AGENT_ID, state={}, conversation_manager_state={})
            )
            index = 0
            for generated in turns:
                for event in generated.events:
                    message = event.to_dict()  # the smallest same-information message
                    manager.create_message(
                        session_id, AGENT_ID, self._message_class.from_message(message, index)
                    )
                    index += 1
            manager.client.close()

    def _read(self, session_id: str) -> int:
        manager = self.manager(session_id)
        manager.read_agent(session_id, AGENT_ID)
        messages = manager.list_messages(session_id, AGENT_ID)
        manager.client.close()
        return len(messages)

    async def read_one(self, thread_id: str) -> int:
        return self._read(thread_id)

    async def read_all(self, thread_ids: list[str]) -> int:
        return sum(self._read(t) for t in thread_ids)


class Naive:
    """boto3, one client, one ``put_object`` of a plain JSON array per turn."""

    name = "naive"

    def __init__(self, ctx: Context, bucket: str, client: Any, counter: HttpCounter) -> None:
        self.ctx = ctx
        self.bucket = bucket
        self.client = client
        self.counter = counter

    async def write(self, sessions: dict[str, list[GeneratedTurn]]) -> None:
        for session_id, turns in sessions.items():
            for generated in turns:
                body = b"[" + b",".join(e.to_json() for e in generated.events) + b"]"
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=f"agents/{session_id}/{generated.turn:06d}.json",
                    Body=body,
                    ContentType="application/json",
                )

    def _read(self, session_id: str) -> int:
        events = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"agents/{session_id}/"):
            for obj in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                events += len(orjson.loads(body))
        return events

    async def read_one(self, thread_id: str) -> int:
        return self._read(thread_id)

    async def read_all(self, thread_ids: list[str]) -> int:
        return sum(self._read(t) for t in thread_ids)


async def _timed(side: Any, action: Callable[[], Any]) -> Phase:
    side.counter.take()
    cpu, wall = time.process_time(), time.perf_counter()
    events = await action()
    phase = Phase(time.perf_counter() - wall, time.process_time() - cpu)
    phase.requests = side.counter.take()
    phase.events = events or 0
    return phase


def _stored_bytes(client: Any, bucket: str, *, with_metadata: bool) -> dict[str, int]:
    """Listed bytes, objects and (optionally, one HEAD per object) user-metadata bytes."""
    listed = objects = 0
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            listed += int(obj["Size"])
            objects += 1
            keys.append(obj["Key"])
    result = {"listed_bytes": listed, "objects": objects}
    if with_metadata:

        def metadata_bytes(key: str) -> int:
            head = client.head_object(Bucket=bucket, Key=key)
            # S3's measure of user metadata (its 2 KB limit): UTF-8 bytes of names and values.
            return sum(len(k.encode()) + len(v.encode()) for k, v in head["Metadata"].items())

        with ThreadPoolExecutor(8) as pool:
            result["metadata_bytes"] = sum(pool.map(metadata_bytes, keys))
    return result


def _reset(endpoint_url: str) -> None:
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def _median_ratio(pairs: list[tuple[float, float]]) -> float | None:
    ratios = [a / b for a, b in pairs if b > 0]
    return rounded(statistics.median(ratios)) if ratios else None


async def run(ctx: Context) -> dict[str, Any]:
    import boto3

    quick = ctx.sizes.quick
    spec = WorkloadSpec(
        threads=2 if quick else 20,
        turns_per_thread=4 if quick else 10,
        events_per_turn=20,
        text_bytes=ctx.sizes.workload.text_bytes,
        seed=ctx.sizes.workload.seed,
    )
    repetitions = ctx.sizes.peer_repetitions
    one_session_reads = 1 if quick else 3
    turns = list(generate_turns(spec))
    sessions = sessions_of(turns)
    thread_ids = list(sessions)
    expected = {t: sum(len(g.events) for g in gs) for t, gs in sessions.items()}
    version = strands_version()
    sides = [s for s in SIDES if s != "strands" or version is not None]
    if not ctx.embedded:
        raise RuntimeError("the peer benchmark resets the server: embedded server only")
    # Default settings for ours means credentials from the standard chain: the environment.
    os.environ.update(
        AWS_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
        AWS_DEFAULT_REGION=CREDENTIALS["region_name"],
    )
    admin = boto3.Session(**CREDENTIALS).client("s3", endpoint_url=ctx.endpoint_url)
    naive_counter = HttpCounter()
    naive_session = boto3.Session(**CREDENTIALS)
    naive_counter.attach(naive_session.events)
    naive_client = naive_session.client("s3", endpoint_url=ctx.endpoint_url)

    per_side: dict[str, dict[str, list[Phase]]] = {
        s: {"write": [], "read_one": [], "read_all": []} for s in sides
    }
    stored: dict[str, dict[str, int]] = {}
    for repetition in range(repetitions):
        _reset(ctx.endpoint_url)
        order = list(itertools.islice(itertools.cycle(sides), repetition, repetition + len(sides)))
        ctx.log(f"   peer repetition {repetition + 1}/{repetitions}: {', '.join(order)}")
        for name in order:
            bucket = f"peer-{name}-{repetition}"
            await create_bucket(ctx.endpoint_url, bucket, ctx.session())
            side: Any
            if name == "ours":
                side = Ours(ctx, bucket)
            elif name == "strands":
                side = Strands(ctx, bucket)
            else:
                side = Naive(ctx, bucket, naive_client, naive_counter)
            phases = per_side[name]
            phases["write"].append(await _timed(side, partial(side.write, sessions)))
            for thread_id in thread_ids[:one_session_reads]:
                phase = await _timed(side, partial(side.read_one, thread_id))
                if phase.events != expected[thread_id]:
                    raise AssertionError(f"{name} read {phase.events} of {expected[thread_id]}")
                phases["read_one"].append(phase)
            phase = await _timed(side, partial(side.read_all, thread_ids))
            if phase.events != sum(expected.values()):
                raise AssertionError(f"{name} read {phase.events} events of all sessions")
            phases["read_all"].append(phase)
            measured = _stored_bytes(admin, bucket, with_metadata=repetition == 0)
            if repetition == 0:
                stored[name] = measured
            else:
                stored[name]["listed_bytes_last"] = measured["listed_bytes"]
    naive_client.close()
    admin.close()
    return _summarise(spec, repetitions, per_side, stored, version, one_session_reads)


def _summarise(
    spec: WorkloadSpec,
    repetitions: int,
    per_side: dict[str, dict[str, list[Phase]]],
    stored: dict[str, dict[str, int]],
    version: str | None,
    one_session_reads: int,
) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    sides: dict[str, Any] = {}
    for name, phases in per_side.items():
        write = phases["write"]
        one = phases["read_one"]
        every = phases["read_all"]
        total = stored[name]["listed_bytes"] + stored[name].get("metadata_bytes", 0)
        sides[name] = {
            "write_requests": dict(sorted(write[0].requests.items())),
            "write_requests_total": write[0].total_requests,
            "stored_bytes": total,
            **stored[name],
            "write_wall_s": rounded(med([p.wall for p in write])),
            "write_cpu_s": rounded(med([p.cpu for p in write])),
            "read_one_ms": rounded(med([p.wall for p in one]) * 1000, 1),
            "read_one_cpu_ms": rounded(med([p.cpu for p in one]) * 1000, 1),
            "read_one_requests": dict(sorted(one[0].requests.items())),
            "read_all_s": rounded(med([p.wall for p in every])),
            "read_all_cpu_s": rounded(med([p.cpu for p in every])),
            "read_all_requests": dict(sorted(every[0].requests.items())),
        }

    def ratios(other: str) -> dict[str, float | None]:
        a, b = per_side[other], per_side["ours"]

        def paired(phase: str, attribute: str) -> float | None:
            if phase == "read_one":  # several reads per repetition: pair their medians
                xs = [
                    med([getattr(p, attribute) for p in a[phase][i : i + one_session_reads]])
                    for i in range(0, len(a[phase]), one_session_reads)
                ]
                ys = [
                    med([getattr(p, attribute) for p in b[phase][i : i + one_session_reads]])
                    for i in range(0, len(b[phase]), one_session_reads)
                ]
                return _median_ratio(list(zip(xs, ys, strict=True)))
            return _median_ratio(
                [
                    (getattr(x, attribute), getattr(y, attribute))
                    for x, y in zip(a[phase], b[phase], strict=True)
                ]
            )

        return {
            "write_requests": _median_ratio(
                [
                    (x.total_requests, y.total_requests)
                    for x, y in zip(a["write"], b["write"], strict=True)
                ]
            ),
            "stored_bytes": rounded(sides[other]["stored_bytes"] / sides["ours"]["stored_bytes"]),
            "write_wall": paired("write", "wall"),
            "write_cpu": paired("write", "cpu"),
            "read_one_wall": paired("read_one", "wall"),
            "read_one_cpu": paired("read_one", "cpu"),
            "read_one_requests": rounded(one_total(a) / one_total(b)),
            "read_all_wall": paired("read_all", "wall"),
            "read_all_cpu": paired("read_all", "cpu"),
            "read_all_requests": rounded(
                a["read_all"][0].total_requests / b["read_all"][0].total_requests
            ),
        }

    def one_total(phases: dict[str, list[Phase]]) -> float:
        return float(phases["read_one"][0].total_requests)

    result: dict[str, Any] = {
        "workload": {
            "sessions": spec.threads,
            "turns_per_session": spec.turns_per_thread,
            "events_per_turn": spec.events_per_turn,
            "text_bytes": spec.text_bytes,
            "seed": spec.seed,
        },
        "repetitions": repetitions,
        "strands_version": version or "not installed",
        "sides": sides,
        "ratio_to_ours": {s: ratios(s) for s in per_side if s != "ours"},
    }
    if version is None:
        result["ratio_to_ours"]["strands"] = "not installed"
    return result


FIGURES: tuple[tuple[str, str, str], ...] = (
    # (label, per-side key, ratio key)
    ("write requests", "write_requests_total", "write_requests"),
    ("stored bytes (listed + user metadata)", "stored_bytes", "stored_bytes"),
    ("write wall, s", "write_wall_s", "write_wall"),
    ("write CPU, s", "write_cpu_s", "write_cpu"),
    ("read one session, ms", "read_one_ms", "read_one_wall"),
    ("read one session CPU, ms", "read_one_cpu_ms", "read_one_cpu"),
    ("read one session: requests", "read_one_requests", "read_one_requests"),
    ("read all sessions, s", "read_all_s", "read_all_wall"),
    ("read all sessions CPU, s", "read_all_cpu_s", "read_all_cpu"),
    ("read all sessions: requests", "read_all_requests", "read_all_requests"),
)


def side_by_side(result: dict[str, Any]) -> list[list[str]]:
    """Header and rows of the side-by-side table: each side's figure and the ratios."""
    sides = result["sides"]
    others = ["strands", "naive"]
    header = ["figure", *SIDES, *(f"{s} / ours" for s in others)]
    rows = [header]
    for label, key, ratio_key in FIGURES:
        row = [label]
        for side in SIDES:
            value = sides.get(side, {}).get(key) if side in sides else None
            if isinstance(value, dict):
                value = sum(value.values())
            row.append("not installed" if value is None else f"{value:,}")
        for side in others:
            ratios = result["ratio_to_ours"].get(side)
            ratio = ratios.get(ratio_key) if isinstance(ratios, dict) else None
            row.append("not installed" if ratio is None else f"{ratio}x")
        rows.append(row)
    return rows
