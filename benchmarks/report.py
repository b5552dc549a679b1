"""The run's figures as a table (text and Markdown), the targets, the machine, the JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any

from benchmarks import tradeoff
from benchmarks.peer import side_by_side

if TYPE_CHECKING:
    from pathlib import Path

PACKAGES = ("s3-eventstore", "aioboto3", "aiobotocore", "botocore", "zstandard", "orjson", "moto")


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python and library versions, date."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        with open("/proc/loadavg") as loadavg:
            load = loadavg.read().split()[:3]
    except OSError:
        load = []
    return {
        "loadavg_1_5_15": load,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 with the measured value and whether it is met."""
    checks: list[tuple[str, str, str, Any]] = [
        (
            "exactly 1 PUT per turn, nothing else",
            "requests.write_only_one_put_per_turn",
            "== true",
            lambda v: v is True,
        ),
        ("compression ratio at default level", "bytes.server_ratio", ">= 3.0", lambda v: v >= 3.0),
        (
            "append rate S3 / in-memory",
            "append.ratio_s3_to_memory",
            ">= 0.7",
            lambda v: v >= 0.7,
        ),
        (
            "finish_turn CPU / bare minimum",
            "finish_cpu.ratio_store_to_bare",
            "<= 1.3",
            lambda v: v <= 1.3,
        ),
        (
            "cold import (s3_eventstore + aioboto3) / import aioboto3",
            "cold_start.ratio_import_both_to_aioboto3",
            "<= 1.10",
            lambda v: v <= 1.10,
        ),
        (
            "cold import, CPU time (s3_eventstore + aioboto3) / aioboto3",
            "cold_start.cpu_ratio_import_both_to_aioboto3",
            "<= 1.10",
            lambda v: v <= 1.10,
        ),
        (
            "cold import, -X importtime: s3_eventstore after aioboto3 / aioboto3",
            "cold_start.importtime_marginal.fraction",
            "<= 0.10",
            lambda v: v <= 0.10,
        ),
        (
            "cold first finished turn / bare aioboto3 first PUT",
            "cold_start.ratio_first_turn_to_bare_aioboto3_put",
            "<= 1.10",
            lambda v: v <= 1.10,
        ),
        (
            "CLI `threads` on a small archive, wall ms (issue 14: idle 2-core machine)",
            "cli_calls.median_wall_ms.threads",
            "< 500",
            lambda v: v < 500,
        ),
        (
            "CLI `cat THREAD` on a small archive, wall ms (issue 14: idle 2-core machine)",
            "cli_calls.median_wall_ms.cat",
            "< 500",
            lambda v: v < 500,
        ),
        (
            "max_buffer_bytes bounds real memory: RSS growth / budget (worst path)",
            "buffer_memory.worst_rss_growth_to_budget",
            "<= 1.25",
            lambda v: v <= 1.25,
        ),
        (
            "big turn: peak RSS above baseline (MiB)",
            "memory.big_turn.peak_above_baseline_mib",
            "< 128",
            lambda v: v < 128,
        ),
    ]
    checks += [
        (
            f"analytics {query}: bytes read, per-turn objects / Parquet tier",
            f"analytics.ratios.{query}.fewer_bytes",
            ">= 100",
            lambda v: v >= 100,
        )
        for query in ("count_by_type", "tokens_per_thread")
    ]
    checks += [
        (
            f"analytics {query}: wall time, per-turn objects / Parquet tier",
            f"analytics.ratios.{query}.speedup",
            ">= 50",
            lambda v: v >= 50,
        )
        for query in ("count_by_type", "tokens_per_thread")
    ]
    checks.append(
        (
            "publish: GETs per unpublished turn object (log entries included)",
            "analytics.publish.gets_per_turn_object",
            "<= 1.0 + log",
            lambda v: v <= 1.01,
        )
    )
    checks.append(
        (
            "publish: PUTs beyond one per data file (the commit)",
            "analytics.publish.puts_beyond_one_per_file",
            "== 1",
            lambda v: v == 1,
        )
    )
    rows = []
    for name, path, target, check in checks:
        value = _get(results, path)
        met = None if value is None else bool(check(value))
        rows.append({"target": name, "figure": path, "wanted": target, "value": value, "met": met})
    big = _get(results, "memory.big_turn")
    for row in rows:
        if isinstance(big, dict) and row["figure"] == "memory.big_turn.peak_above_baseline_mib":
            row["target"] += f" ({big['turn_bytes'] >> 20} MiB turn)"
    for pattern in ("alive", "sequential"):
        value = _get(results, f"store_open.{pattern}.nth_open_plus_first_put_cpu_ms")
        rows.append(
            {
                "target": f"N-th store ({pattern}): open + first PUT, CPU ms",
                "figure": f"store_open.{pattern}.nth_open_plus_first_put_cpu_ms",
                "wanted": "<= 5",
                "value": value,
                "met": None if value is None else value <= 5,
            }
        )
    peer = results.get("peer")
    if isinstance(peer, dict):
        for name, key, wanted in (
            ("stored bytes, strands / ours", "stored_bytes", 4.5),
            ("write wall time, strands / ours", "write_wall", 8.0),
            ("read one session, strands / ours", "read_one_wall", 15.0),
            ("read all sessions, strands / ours", "read_all_wall", 25.0),
        ):
            ratios = peer["ratio_to_ours"].get("strands")
            value = ratios.get(key) if isinstance(ratios, dict) else None
            rows.append(
                {
                    "target": name,
                    "figure": f"peer.ratio_to_ours.strands.{key}",
                    "wanted": f">= {wanted}",
                    "value": value,
                    "met": None if value is None else value >= wanted,
                }
            )
    return rows


def _requests(counts: dict[str, int] | None) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{op} {n}" for op, n in counts.items())


def _pct(figures: dict[str, float] | None) -> str:
    if not figures:
        return "-"
    return f"p50 {figures['p50']:.2f} / p90 {figures['p90']:.2f} / p99 {figures['p99']:.2f} ms"


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) for the table, in the order of the issue."""
    out: list[tuple[str, str]] = []
    add = out.append
    req = results.get("requests")
    if req:
        w = req["workload"]
        add(
            (
                "workload",
                (
                    f"{w['threads']} threads x {w['turns_per_thread']} turns x "
                    f"{w['events_per_turn']} events (text_bytes {w['text_bytes']}) = "
                    f"{w['turns']} turns, {w['events']} events"
                ),
            )
        )
        add(("write: requests per turn", _requests(req["write_requests_per_turn"])))
        turns = req["read_thread_turns"]
        for label, counts in req["read_requests"].items():
            add((f"{label} ({turns}-turn thread): requests", _requests(counts)))
    b = results.get("bytes")
    if b:
        if "server_ratio" in b:
            add(
                (
                    "stored bytes/event (level 3, on server)",
                    (
                        f"{b['server_stored_bytes_per_event']} B vs JSON "
                        f"{b['server_json_bytes_per_event']} B = {b['server_ratio']}x; "
                        f"{b['server_stored_bytes_per_turn']} B per object"
                    ),
                )
            )
        for level, f in b["levels"].items():
            add(
                (
                    f"zstd level {level}",
                    (
                        f"ratio {f['ratio']}x, {f['stored_bytes_per_event']} B/event, "
                        f"{f['compress_cpu_ms_per_mb']} ms CPU/MB "
                        f"({f['compress_mb_per_cpu_second']} MB/s)"
                    ),
                )
            )
        add(
            (
                "ratio if a whole workload were one frame",
                f"{b['ratio_if_all_turns_were_one_object_level3']}x",
            )
        )
    a = results.get("append")
    if a:
        add(
            (
                "append: S3 store vs in-memory",
                (
                    f"{a['s3_appends_per_second']:,.0f}/s vs {a['memory_appends_per_second']:,.0f}/s"
                    f" = {a['ratio_s3_to_memory']} (min {a['ratio_min']}, max {a['ratio_max']})"
                ),
            )
        )
    f = results.get("finish_cpu")
    if f:
        add(
            (
                "finish_turn CPU (stub client) vs bare minimum",
                (
                    f"{f['store_cpu_us_per_turn']} us vs {f['bare_minimum_cpu_us_per_turn']} us per "
                    f"{f['events_per_turn']}-event turn = {f['ratio_store_to_bare']}x "
                    f"(min {f['ratio_min']}, max {f['ratio_max']})"
                ),
            )
        )
    if req:
        add(("finish_turn latency over the server", _pct(req["finish_turn_latency_ms"])))
    r = results.get("read_latency")
    if r:
        for level, g in r["get_turns"].items():
            add(
                (
                    f"get_turns {r['thread_turns']} turns, read_concurrency {level}",
                    (
                        f"{_pct(g['latency_ms'])}; {g['turns_per_second']} turns/s; "
                        f"x{g['speedup_vs_1']} vs 1; CPU/wall client {g['client_cpu_per_wall']}, "
                        f"server {g['server_cpu_per_wall']}"
                    ),
                )
            )
        for label in (
            "event_count_fresh_store",
            "event_count_warm_store",
            "get_events_since_last_turn_warm",
            "get_events_since_last_turn_fresh",
        ):
            g = r[label]
            add(
                (
                    f"{label} ({r['thread_turns']} turns)",
                    f"{_pct(g['latency_ms'])}; {_requests(g['requests'])}",
                )
            )
    c = results.get("cold_start")
    if c:
        m = c["median_ms"]
        for name, ms in m.items():
            add((f"cold: {name} (median)", f"{ms} ms"))
        add(
            (
                "cold: import s3_eventstore / import aioboto3",
                f"{c['ratio_import_s3_eventstore_to_aioboto3']}x",
            )
        )
        add(("cold: import both / import aioboto3", f"{c['ratio_import_both_to_aioboto3']}x"))
        for name, ms in c["median_cpu_ms"].items():
            add((f"cold: {name} (median CPU)", f"{ms} ms"))
        add(
            (
                "cold: import both / import aioboto3, CPU",
                f"{c['cpu_ratio_import_both_to_aioboto3']}x",
            )
        )
        add(
            (
                "cold: first turn / bare aioboto3 first PUT, CPU",
                f"{c['cpu_ratio_first_turn_to_bare_aioboto3_put']}x",
            )
        )
        m = c["importtime_marginal"]
        add(
            (
                "cold: -X importtime, s3_eventstore after aioboto3",
                (
                    f"{m['s3_eventstore_after_aioboto3_us'] / 1000:.1f} ms vs aioboto3 "
                    f"{m['aioboto3_us'] / 1000:.1f} ms = {m['fraction']}"
                ),
            )
        )
        add(("cold: first turn / import aioboto3", f"{c['ratio_first_turn_to_import_aioboto3']}x"))
        add(
            (
                "cold: first turn / bare aioboto3 first PUT",
                f"{c['ratio_first_turn_to_bare_aioboto3_put']}x",
            )
        )
    calls = results.get("cli_calls")
    if calls:
        load = calls["loadavg_1_before_after"]
        for name in calls["median_wall_ms"]:
            add(
                (
                    f"CLI call: {name} (median wall / CPU; load {load[0]}-{load[1]})",
                    f"{calls['median_wall_ms'][name]} ms / {calls['median_cpu_ms'][name]} ms",
                )
            )
    mem = results.get("memory")
    if mem:
        o = mem["open_turns"]
        add(
            (
                f"memory: {o['turns']} open turns x {o['events_per_turn']} events",
                (
                    f"peak {o['peak_above_baseline_mib']} MiB above baseline "
                    f"({o['bytes_per_event_above_baseline']} B/event; JSON {o['json_mib']} MiB)"
                ),
            )
        )
        for key in ("big_turn", "big_turn_streaming_off"):
            if key in mem:
                g = mem[key]
                add(
                    (
                        (
                            f"memory: one {g['turn_bytes'] >> 20} MiB turn, streaming "
                            f"{'on' if g['streaming'] else 'off'}"
                        ),
                        (
                            f"peak {g['peak_above_baseline_mib']} MiB above baseline; "
                            f"stored {g['stored_bytes'] / (1 << 20):.1f} MiB; append "
                            f"{g['append_seconds']} s, finish {g['finish_seconds']} s"
                        ),
                    )
                )
    opened = results.get("store_open")
    if opened:
        for pattern in ("alive", "sequential"):
            o = opened[pattern]
            add(
                (
                    f"store open, {pattern} ({opened['stores']} stores): CPU ms",
                    (
                        f"first: open {o['first_open_cpu_ms']} + first PUT "
                        f"{o['first_put_cpu_ms']}; N-th (median): open {o['nth_open_cpu_ms']} + "
                        f"first PUT {o['nth_first_put_cpu_ms']} (a later PUT: "
                        f"{o['nth_second_put_cpu_ms']})"
                    ),
                )
            )
    cost = results.get("costs")
    if cost:
        p = cost["per_month"]
        add(("1M turns/day: PUT per month", f"${p['put_usd']:,.2f}"))
        add(
            (
                "1M turns/day: read each turn once",
                (
                    f"GET ${p['read_each_turn_once_get_usd']:,.2f} + LIST "
                    f"${p['read_each_turn_once_list_usd']:,.2f}"
                ),
            )
        )
        add(("1M turns/day: data per month", f"{p['data_gib_per_month']} GiB"))
        for name, s in p["storage_classes"].items():
            add(
                (
                    f"1M turns/day: a month's data kept in {name}",
                    (
                        f"${s['storage_usd_per_month_kept']:,.2f}/month ({s['billable_gib']} GiB "
                        f"billable); transition ${s['transition_usd_once']:,.2f} once"
                    ),
                )
            )
    return out


def _extra_tables(results: dict[str, Any]) -> list[tuple[str, list[list[str]]]]:
    study = results.get("tradeoff")
    if not isinstance(study, dict):
        return []
    title = (
        f"level x dictionary ({study['turns']} turns, {study['json_bytes_per_turn']} B of JSON "
        "lines per turn):"
    )
    return [(title, tradeoff.rows(study))]


def _peer_rows(results: dict[str, Any]) -> list[list[str]]:
    peer = results.get("peer")
    return side_by_side(peer) if isinstance(peer, dict) else []


def render_text(results: dict[str, Any]) -> str:
    """The table and the targets for a terminal."""
    table = rows(results)
    width = max((len(name) for name, _ in table), default=10)
    lines = [f"{name:<{width}}  {value}" for name, value in table]
    lines.append("")
    for title, table in _extra_tables(results):
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines.append(title)
        lines += [
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in table
        ]
        lines.append("")
    peer = _peer_rows(results)
    if peer:
        widths = [max(len(row[i]) for row in peer) for i in range(len(peer[0]))]
        lines.append(
            f"side by side ({results['peer']['workload']}, strands-agents "
            f"{results['peer']['strands_version']}):"
        )
        lines += [
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in peer
        ]
        lines.append("")
    for t in targets(results):
        state = {True: "MET", False: "MISSED", None: "NOT MEASURED"}[t["met"]]
        lines.append(f"{state:<12} {t['target']}: {t['value']} (wanted {t['wanted']})")
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    """The table and the targets as Markdown (for docs/BENCHMARKS.md)."""
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows(results)]
    for title, table in _extra_tables(results):
        lines += ["", title, "", "| " + " | ".join(table[0]) + " |", "|---" * len(table[0]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    peer = _peer_rows(results)
    if peer:
        lines += ["", "| " + " | ".join(peer[0]) + " |", "|---" * len(peer[0]) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in peer[1:]]
    lines += ["", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in targets(results):
        state = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['wanted']} | {t['value']} | {state} |")
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results (with targets) as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
