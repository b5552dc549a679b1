"""Shared by the CLI, inspect and analytics tests: a populated archive and CLI plumbing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from s3_eventstore.cli import main
from s3_eventstore.demo.embedded import CREDENTIALS
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns
from s3_eventstore.envelope import AgentEventEnvelope

if TYPE_CHECKING:
    from s3_eventstore import S3EventStore
    from s3_eventstore.demo.embedded import EmbeddedS3Server

PREFIX = "archive/v1"
SPECIAL_THREADS = ("a/b c", "ünïcødé ✓.x", "50%25+x~")


@dataclass
class Archive:
    """What was written, as the Python API saw it."""

    url: str
    endpoint_url: str
    bucket: str
    turns: dict[str, dict[int, tuple[AgentEventEnvelope, ...]]]

    def events(self, thread_id: str) -> list[AgentEventEnvelope]:
        return [e for turn in sorted(self.turns[thread_id]) for e in self.turns[thread_id][turn]]

    def payload(self, thread_id: str, turn: int | None = None) -> bytes:
        turns = sorted(self.turns[thread_id]) if turn is None else [turn]
        return b"".join(e.to_json() + b"\n" for t in turns for e in self.turns[thread_id][t])


async def write_archive(
    store: S3EventStore, spec: WorkloadSpec, *, special: bool = True
) -> dict[str, dict[int, tuple[AgentEventEnvelope, ...]]]:
    """Write a workload (plus threads with awkward ids) through the store."""
    written: dict[str, dict[int, tuple[AgentEventEnvelope, ...]]] = {}
    for generated in generate_turns(spec):
        for event in generated.events:
            await store.append(generated.thread_id, generated.turn, event)
        await store.finish_turn(generated.thread_id, generated.turn)
        written.setdefault(generated.thread_id, {})[generated.turn] = generated.events
    if special:
        for number, thread_id in enumerate(SPECIAL_THREADS):
            events = (
                AgentEventEnvelope.create("start", {"thread_id": thread_id, "turn": 7}, sequence=0),
                AgentEventEnvelope.create(
                    "turn_complete",
                    {"usage": {"input_tokens": 10 + number, "output_tokens": 1}},
                    sequence=1,
                ),
            )
            for event in events:
                await store.append(thread_id, 7, event)
            await store.finish_turn(thread_id, 7)
            written[thread_id] = {7: events}
    return written


@pytest.fixture
async def archive(s3_store: S3EventStore, s3_server: EmbeddedS3Server, bucket: str) -> Archive:
    spec = WorkloadSpec(threads=3, turns_per_thread=2, events_per_turn=8, seed=11)
    turns = await write_archive(s3_store, spec)
    return Archive(f"s3://{bucket}/{PREFIX}", s3_server.endpoint_url, bucket, turns)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials the embedded server accepts, and nothing else from the environment."""
    for name in ("S3_EVENTSTORE_URL", "S3_EVENTSTORE_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_REGION", CREDENTIALS["region_name"])


def invoke(
    archive: Archive | None, *args: str, endpoint_url: str | None = None, **kw: Any
) -> Result:
    """Run the CLI against ``archive`` (``--url`` and ``--endpoint-url`` appended)."""
    options: list[str] = []
    if archive is not None:
        options = ["--url", archive.url, "--endpoint-url", archive.endpoint_url]
    elif endpoint_url is not None:
        options = ["--endpoint-url", endpoint_url]
    return CliRunner().invoke(main, [*args, *options], catch_exceptions=False, **kw)
