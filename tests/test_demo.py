"""The main job: the demo replays, reads back and checks; the CLI prints its report."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from click.testing import CliRunner

from s3_eventstore.cli import main
from s3_eventstore.demo.demo import run_demo
from s3_eventstore.demo.workload import WorkloadSpec, generate_turns

if TYPE_CHECKING:
    from s3_eventstore import S3EventStore


async def test_demo_round_trip(s3_store: S3EventStore, backdoor: Any, bucket: str) -> None:
    spec = WorkloadSpec(threads=8, turns_per_thread=3, events_per_turn=12, seed=3)
    report = await run_demo(s3_store, spec, endpoint="test")
    assert report.ok, report.mismatches
    assert report.threads == 8
    assert report.turns_finished == 22  # 2 of 8 threads leave their last turn open
    assert report.turns_open == 2
    assert report.events == 8 * 3 * 12
    assert report.objects == 22
    assert report.write_requests == {"PutObject": 22}
    assert report.stored_bytes < report.json_bytes
    assert s3_store.open_turns() == []


def test_workload_is_seeded_and_shaped() -> None:
    spec = WorkloadSpec(threads=2, turns_per_thread=2, events_per_turn=20, seed=1)
    first, second = list(generate_turns(spec)), list(generate_turns(spec))
    assert first == second
    assert [len(t.events) for t in first] == [20] * 4
    for turn in first:
        assert turn.events[0].type == "start"
        assert turn.events[-1].type == "turn_complete"
        assert turn.events[-1].fields["turn"] == turn.turn
        assert [e.sequence for e in turn.events] == list(range(20))
    other = list(generate_turns(WorkloadSpec(threads=2, turns_per_thread=2, seed=2)))
    assert other != first


def test_cli_demo_json() -> None:
    result = CliRunner().invoke(
        main, ["demo", "--threads", "4", "--turns", "2", "--events", "5", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["objects"] == 7
    assert report["write_requests"] == {"PutObject": 7}  # one PUT per finished turn
    # The demo's own server is a fresh endpoint: probed once, counted apart.
    assert set(report["probe_requests"]) <= {"PutObject", "HeadObject", "DeleteObject"}
    assert report["probe_requests"]["PutObject"] >= 2


def test_cli_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "s3-eventstore demo" in result.output
