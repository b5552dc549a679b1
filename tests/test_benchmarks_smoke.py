"""The benchmarks never rot: ``python -m benchmarks --quick`` runs and reports every figure.

Only that the figures exist is checked, never their values: a timed assertion in a test
suite is not a benchmark (the figures are in docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

FIGURES = [
    "machine.nproc",
    "machine.cpu_model",
    "machine.python",
    "machine.versions",
    "requests.write_requests_per_turn.PutObject",
    "requests.write_only_one_put_per_turn",
    "requests.read_requests.get_turns",
    "requests.read_requests.event_count_fresh_store",
    "requests.read_requests.event_count_warm_store",
    "requests.read_requests.get_events_since_middle_warm",
    "requests.finish_turn_latency_ms.p50",
    "requests.finish_turn_latency_ms.p90",
    "requests.finish_turn_latency_ms.p99",
    "bytes.server_stored_bytes_per_event",
    "bytes.server_ratio",
    *(
        f"bytes.levels.{level}.{k}"
        for level in (1, 3, 6, 9, 19)
        for k in ("ratio", "compress_cpu_ms_per_mb")
    ),
    "append.s3_appends_per_second",
    "append.memory_appends_per_second",
    "append.ratio_s3_to_memory",
    "finish_cpu.store_cpu_us_per_turn",
    "finish_cpu.bare_minimum_cpu_us_per_turn",
    "finish_cpu.ratio_store_to_bare",
    *(f"read_latency.get_turns.{c}.latency_ms.p99" for c in (1, 8, 32, 64)),
    *(f"read_latency.get_turns.{c}.speedup_vs_1" for c in (1, 8, 32, 64)),
    "read_latency.event_count_fresh_store.latency_ms.p50",
    "read_latency.event_count_warm_store.latency_ms.p50",
    "read_latency.get_events_since_last_turn_warm.latency_ms.p50",
    "read_latency.get_events_since_last_turn_warm.requests",
    "cold_start.median_ms.import_aioboto3",
    "cold_start.median_ms.import_s3_eventstore",
    "cold_start.median_ms.first_turn_s3_eventstore",
    "cold_start.ratio_import_both_to_aioboto3",
    "cold_start.ratio_first_turn_to_import_aioboto3",
    "cold_start.importtime_import_s3_eventstore.by_self_us",
    "cli_calls.median_wall_ms.threads",
    "cli_calls.median_wall_ms.cat",
    "cli_calls.median_cpu_ms.cat",
    "cli_calls.loadavg_1_before_after",
    "memory.open_turns.peak_above_baseline_mib",
    "memory.big_turn.peak_above_baseline_mib",
    "memory.big_turn.turn_bytes",
    *(
        f"buffer_memory.{path}.{figure}"
        for path in ("create", "from_json")
        for figure in ("rss_growth_to_budget", "budget_mib", "limited.rss_growth_to_limit")
    ),
    "buffer_memory.worst_rss_growth_to_budget",
    "costs.prices",
    "costs.per_month.put_usd",
    "costs.per_month.read_each_turn_once_get_usd",
    "costs.per_month.storage_classes.STANDARD.storage_usd_per_month_kept",
    "costs.per_month.storage_classes.DEEP_ARCHIVE.transition_usd_once",
    "peer.sides.ours.write_requests_total",
    "peer.sides.ours.stored_bytes",
    "peer.sides.naive.read_all_s",
    "peer.ratio_to_ours.naive.stored_bytes",
    "peer.ratio_to_ours.strands",  # the ratios, or "not installed"
    "peer.strands_version",
    "tradeoff.shipped_dictionaries",
    "store_open.alive.nth_open_plus_first_put_cpu_ms",
    "store_open.sequential.nth_open_plus_first_put_cpu_ms",
    "tradeoff.table.none.3.stored_bytes_per_turn",
    "tradeoff.table.none.3.finish_cpu_us_per_turn",
    "tradeoff.table.none.3.read_cpu_us_per_turn",
    *(
        f"analytics.{tier}.{query}.{figure}"
        for tier in ("per_turn_objects", "parquet", "parquet_plus_pending_view")
        for query in ("count_by_type", "tokens_per_thread", "one_thread", "cross_thread_join")
        for figure in ("seconds", "get_requests", "bytes_read")
    ),
    "analytics.ratios.count_by_type.fewer_bytes",
    "analytics.publish.get_requests",
    "analytics.publish.put_requests",
    "analytics.publish.gets_per_turn_object",
    "targets",
]


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        assert isinstance(data, dict), f"{path}: {part!r} is under a {type(data).__name__}"
        assert part in data, f"{path}: no {part!r} in the benchmark JSON"
        data = data[part]
    return data


@pytest.mark.slow  # every benchmark, quick settings: minutes
def test_quick_benchmarks_run_and_report_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["run"]["errors"] == {}
    assert all(data["analytics"]["same_answers"].values())  # both tiers, the same answers
    for path in FIGURES:
        assert _lookup(data, path) is not None, f"{path} is null"
    assert {t["figure"] for t in data["targets"]} >= {
        "append.ratio_s3_to_memory",
        "finish_cpu.ratio_store_to_bare",
        "memory.big_turn.peak_above_baseline_mib",
        "buffer_memory.worst_rss_growth_to_budget",
    }


def test_side_by_side_table_says_when_the_peer_is_not_installed() -> None:
    from benchmarks.peer import side_by_side

    side = {"write_requests_total": 10, "stored_bytes": 1000, "read_one_requests": {"GetObject": 2}}
    result = {
        "sides": {"ours": side, "naive": side},
        "ratio_to_ours": {"strands": "not installed", "naive": {"stored_bytes": 1.0}},
    }
    rows = side_by_side(result)
    assert rows[0] == ["figure", "ours", "strands", "naive", "strands / ours", "naive / ours"]
    stored = next(row for row in rows if row[0].startswith("stored bytes"))
    assert stored == [stored[0], "1,000", "not installed", "1,000", "not installed", "1.0x"]
    requests = next(row for row in rows if row[0] == "read one session: requests")
    assert requests[1] == "2"
