"""Loading the agent-sdk wire-format test vectors (``tests/fixtures/agent-sdk``).

The vectors are data — facts about agent-sdk's wire format — kept in the repository
beside the tests. They are found through ``$AGENT_SDK_FIXTURES`` or the repository's
``tests/fixtures/agent-sdk``; a missing directory or file is an error, never a skip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from s3_eventstore.envelope import AgentEventEnvelope

__all__ = [
    "VECTOR_FILES",
    "AgentSdkVectors",
    "ReplayStep",
    "find_agent_sdk_fixtures",
    "load_agent_sdk_vectors",
]

_RELATIVE: Final = Path("tests") / "fixtures" / "agent-sdk"
VECTOR_FILES: Final = (
    "envelopes.jsonl",
    "envelopes.meta.jsonl",
    "expected_get_turns.json",
    "stored_turns.json",
    "legacy_envelopes.input.jsonl",
    "legacy_envelopes.normalized.jsonl",
)
"""Every file of the vectors; all must be present."""


def find_agent_sdk_fixtures() -> Path | None:
    """Locate the vectors directory, or ``None``.

    ``$AGENT_SDK_FIXTURES`` when set; else ``tests/fixtures/agent-sdk`` of the source
    checkout this package was imported from; else of the working directory or one of
    its parents (a checkout whose package is installed elsewhere).
    """
    explicit = os.environ.get("AGENT_SDK_FIXTURES")
    if explicit:
        return Path(explicit)
    checkout = Path(__file__).resolve().parents[2]
    for base in (checkout, Path.cwd(), *Path.cwd().parents):
        candidate = base / _RELATIVE
        if (candidate / "envelopes.jsonl").is_file():
            return candidate
    return None


def load_agent_sdk_vectors() -> AgentSdkVectors:
    """The vectors, checked complete.

    Raises:
        FileNotFoundError: the directory or one of :data:`VECTOR_FILES` is missing (set
            ``AGENT_SDK_FIXTURES`` to the directory holding them).
    """
    root = find_agent_sdk_fixtures()
    if root is None:
        raise FileNotFoundError(
            f"the agent-sdk vectors are missing: no {_RELATIVE} in this checkout "
            "(set AGENT_SDK_FIXTURES to their directory)"
        )
    if not root.is_dir():
        raise FileNotFoundError(f"the agent-sdk vectors are missing: {root} is not a directory")
    vectors = AgentSdkVectors(root)
    vectors.check()
    return vectors


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

    def check(self) -> None:
        """Make sure every file of the vectors is there.

        Raises:
            FileNotFoundError: naming the missing files.
        """
        missing = [name for name in VECTOR_FILES if not (self.root / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"agent-sdk vectors incomplete in {self.root}: missing {', '.join(missing)}"
            )

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
