"""Loading the agent-sdk wire-format test vectors (``shared/fixtures/agent-sdk``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from s3_eventstore.envelope import AgentEventEnvelope

__all__ = ["AgentSdkVectors", "ReplayStep", "find_agent_sdk_fixtures"]

_RELATIVE = Path("shared") / "fixtures" / "agent-sdk"


def find_agent_sdk_fixtures() -> Path | None:
    """Locate the vectors: ``$AGENT_SDK_FIXTURES``, else a ``shared/fixtures/agent-sdk``
    beside the working directory or one of its parents."""
    explicit = os.environ.get("AGENT_SDK_FIXTURES")
    if explicit:
        return Path(explicit)
    for base in (Path.cwd(), *Path.cwd().parents):
        for candidate in (base / _RELATIVE, base.parent / _RELATIVE):
            if (candidate / "envelopes.jsonl").is_file():
                return candidate
    return None


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One call of the agent loop: append ``envelope``, then maybe ``finish_turn``."""

    thread_id: str
    turn: int
    envelope: AgentEventEnvelope
    finish_turn_after: bool
    scenario: str


@dataclass(frozen=True, slots=True)
class AgentSdkVectors:
    """The vectors of one fixtures directory."""

    root: Path

    def lines(self, name: str = "envelopes.jsonl") -> list[bytes]:
        """Raw JSON lines of a ``.jsonl`` file, without newlines."""
        return [line for line in (self.root / name).read_bytes().split(b"\n") if line]

    def replay(self) -> list[ReplayStep]:
        """``envelopes.jsonl`` joined line for line with ``envelopes.meta.jsonl``."""
        meta = [orjson.loads(line) for line in self.lines("envelopes.meta.jsonl")]
        envelopes = self.lines()
        if len(meta) != len(envelopes):
            raise ValueError("envelopes.jsonl and envelopes.meta.jsonl differ in length")
        return [
            ReplayStep(
                m["thread_id"],
                m["turn"],
                AgentEventEnvelope.from_json(line),
                m["finish_turn_after"],
                m["scenario"],
            )
            for m, line in zip(meta, envelopes, strict=True)
        ]

    def expected_get_turns(self) -> dict[str, Any]:
        """``{thread_id: get_turns() as JSON}`` for the embedded-SDK scenarios."""
        data: dict[str, Any] = orjson.loads((self.root / "expected_get_turns.json").read_bytes())
        return data

    def stored_turns(self) -> list[Any]:
        """One thread's ``get_turns()`` JSON: turn 1 finished, turn 2 open."""
        data: list[Any] = orjson.loads((self.root / "stored_turns.json").read_bytes())
        return data
