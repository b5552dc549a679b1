"""A realistic, seeded agent workload built from the agent-sdk event shapes.

Used by ``s3-eventstore demo`` and ``benchmarks/``. Each generated turn looks like an
agent loop's: ``start``, a burst of thinking deltas, text deltas, sometimes a tool
call with progress and a JSON result, the final ``text`` and ``turn_complete`` with
token usage. Event shapes (field names, nesting, value styles) are taken from the
agent-sdk vectors shipped in ``workload_data/``; ids, times and text are generated,
so the same seed always gives the same bytes.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson

from s3_eventstore.envelope import AgentEventEnvelope

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["GeneratedTurn", "WorkloadSpec", "generate_turns", "load_event_shapes"]

_WORDS = [
    "the",
    "refund",
    "policy",
    "allows",
    "returns",
    "within",
    "thirty",
    "days",
    "provided",
    "the",
    "item",
    "is",
    "unused",
    "and",
    "the",
    "receipt",
    "is",
    "kept;",
    "shipping",
    "costs",
    "are",
    "not",
    "refunded",
    "unless",
    "the",
    "order",
    "arrived",
    "damaged",
    "weather",
    "forecast",
    "shows",
    "clear",
    "sky",
    "light",
    "wind",
    "and",
    "mild",
    "temperatures",
    "through",
    "the",
    "weekend",
    "transfer",
    "completed",
    "successfully",
    "reference",
    "number",
    "attached",
    "please",
    "confirm",
    "the",
    "recipient",
]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """How much to generate. The default is the benchmark's: 200 threads x 10 turns x 20 events."""

    threads: int = 200
    """Number of threads (conversations)."""
    turns_per_thread: int = 10
    """Finished turns per thread, numbered from 1."""
    events_per_turn: int = 20
    """Events per turn (at least 3: start, something, turn_complete)."""
    text_bytes: int = 24
    """Typical length of a text delta; raise it to make events larger."""
    seed: int = 0
    """Same seed, same bytes."""


@dataclass(frozen=True, slots=True)
class GeneratedTurn:
    """One turn of the workload, as the agent loop would append it."""

    thread_id: str
    turn: int
    events: tuple[AgentEventEnvelope, ...]


def load_event_shapes() -> dict[str, list[dict[str, Any]]]:
    """The shipped agent-sdk envelopes, grouped by event ``type``."""
    raw = resources.files("s3_eventstore.demo.workload_data").joinpath("agent_sdk_envelopes.jsonl")
    shapes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in raw.read_bytes().splitlines():
        if line.strip():
            data = orjson.loads(line)
            shapes[data["type"]].append(data)
    return dict(shapes)


class _TurnBuilder:
    def __init__(self, spec: WorkloadSpec, shapes: dict[str, list[dict[str, Any]]]) -> None:
        self.spec = spec
        self.shapes = shapes
        self.rng = random.Random(spec.seed)
        self.clock = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _text(self, length: int) -> str:
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < length:
            words.append(self.rng.choice(_WORDS))
        return " ".join(words)[:length]

    def _timestamp(self) -> str:
        self.clock += timedelta(microseconds=self.rng.randint(2_000, 80_000))
        nanos = self.clock.microsecond * 1000 + self.rng.randint(0, 999)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"

    def _event(self, event_type: str, thread_id: str, turn: int, sequence: int, **over: Any) -> Any:
        template = copy.deepcopy(self.rng.choice(self.shapes[event_type]))
        body = {k: v for k, v in template.items() if k not in ("event_id", "sequence", "timestamp")}
        if "thread_id" in body:
            body["thread_id"] = thread_id
        if "turn" in body:
            body["turn"] = turn
        body.update(over)
        return {
            "event_id": self._uuid(),
            "sequence": sequence,
            "timestamp": self._timestamp(),
            **body,
        }

    def turn(self, thread_id: str, turn: int) -> GeneratedTurn:
        spec = self.spec
        message_id, thinking_id, tool_id = self._uuid(), self._uuid(), f"toolu_{self._uuid()[:24]}"
        plan: list[tuple[str, dict[str, Any]]] = [("start", {})]
        body_slots = max(1, spec.events_per_turn - 3)
        with_tool = body_slots >= 6 and self.rng.random() < 0.4
        if with_tool:
            body_slots -= 3
        thinking = min(body_slots // 4, 4)
        plan.extend(
            ("thinking_delta", {"message_id": thinking_id, "delta": self._text(spec.text_bytes)})
            for _ in range(thinking)
        )
        if with_tool:
            plan.append(("tool_call_start", {"id": tool_id}))
            plan.append(("tool_progress", {"id": tool_id}))
            plan.append(("tool_call_end", {"id": tool_id}))
        plan.extend(
            ("text_delta", {"message_id": message_id, "delta": self._text(spec.text_bytes)})
            for _ in range(body_slots - thinking)
        )
        plan.append(("text", {"message_id": message_id, "text": self._text(spec.text_bytes * 4)}))
        usage = {
            "input_tokens": self.rng.randint(800, 60_000),
            "output_tokens": self.rng.randint(10, 900),
            "cached_input_tokens": self.rng.choice([0, 1024, 2048, 4096]),
            "cache_creation_input_tokens": self.rng.choice([0, 0, 0, 2048]),
        }
        plan.append(("turn_complete", {"usage": usage}))
        plan = plan[: max(spec.events_per_turn - 1, 1)] + plan[-1:]
        events = tuple(
            AgentEventEnvelope.from_dict(self._event(kind, thread_id, turn, seq, **over))
            for seq, (kind, over) in enumerate(plan)
        )
        return GeneratedTurn(thread_id, turn, events)


def generate_turns(spec: WorkloadSpec = WorkloadSpec()) -> Iterator[GeneratedTurn]:
    """Every turn of the workload, thread by thread, turns in order."""
    builder = _TurnBuilder(spec, load_event_shapes())
    for _ in range(spec.threads):
        thread_id = builder._uuid()
        for turn in range(1, spec.turns_per_thread + 1):
            yield builder.turn(thread_id, turn)
