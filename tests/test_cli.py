"""The operator's CLI against the moto server: output, exit codes and messages pinned."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore.cli import main
from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.envelope import AgentEventEnvelope
from s3_eventstore.format.keys import KeyLayout
from s3_eventstore.format.turn import TurnCodec
from tests.archive_fixtures import PREFIX, SPECIAL_THREADS, Archive, archive, cli_env, invoke
from tests.conftest import all_keys

if TYPE_CHECKING:
    from pathlib import Path

    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["archive", "cli_env"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("cli_env")

COMMANDS = (
    "threads",
    "turns",
    "cat",
    "export",
    "verify",
    "stats",
    "query",
    "clear",
    "doctor",
    "compact",
    "train-dictionary",
    "serve",
    "publish",
    "demo",
)


def _first_thread(archive: Archive) -> str:
    return next(t for t in archive.turns if t not in SPECIAL_THREADS)


def _plant_corrupt(backdoor: Any, archive: Archive, thread_id: str, turn: int) -> str:
    """Replace a turn object's body with other bytes, keeping its manifest."""
    key = KeyLayout.for_prefix(PREFIX).turn_key(thread_id, turn)
    head = backdoor.head_object(Bucket=archive.bucket, Key=key)
    body = bytearray(backdoor.get_object(Bucket=archive.bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0xFF
    backdoor.put_object(Bucket=archive.bucket, Key=key, Body=bytes(body), Metadata=head["Metadata"])
    return key


# --- help and usage -------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = invoke(None, command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert f"s3-eventstore {command}" in result.output


def test_url_is_required() -> None:
    result = invoke(None, "threads")
    assert result.exit_code == ExitCode.USAGE == 2
    assert "Missing option '--url'" in result.output


def test_a_non_s3_url_is_a_usage_error() -> None:
    result = invoke(None, "threads", "--url", "http://bucket/prefix")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr == "error: 'http://bucket/prefix' is not of the form s3://bucket/prefix\n"


def test_url_and_endpoint_come_from_the_environment(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_EVENTSTORE_URL", archive.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", archive.endpoint_url)
    result = invoke(None, "threads")
    assert result.exit_code == 0, result.output
    assert set(result.stdout.splitlines()) == set(archive.turns)


def test_a_missing_bucket_is_a_storage_error(s3_server: EmbeddedS3Server) -> None:
    result = invoke(
        None, "threads", "--url", "s3://no-such-bucket-x/p", endpoint_url=s3_server.endpoint_url
    )
    assert result.exit_code == ExitCode.STORAGE == 5
    assert result.stderr.startswith("error: bucket not found: ListObjectsV2 p/threads/ failed:")
    assert "Traceback" not in result.output


# --- threads --------------------------------------------------------------------------


def test_threads_lists_every_thread_decoded(archive: Archive) -> None:
    result = invoke(archive, "threads")
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == sorted(archive.turns)


def test_threads_details_json(archive: Archive) -> None:
    result = invoke(archive, "threads", "--details", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {row["thread_id"]: row["turns"] for row in rows} == {
        thread: len(turns) for thread, turns in archive.turns.items()
    }
    assert all(row["stored_bytes"] > 0 and row["other_objects"] == 0 for row in rows)


def test_threads_on_an_empty_prefix(s3_server: EmbeddedS3Server, bucket: str) -> None:
    for extra in ([], ["--details"]):
        result = invoke(
            None,
            "threads",
            "--url",
            f"s3://{bucket}/empty",
            *extra,
            endpoint_url=s3_server.endpoint_url,
        )
        assert result.exit_code == 0, result.output
        assert result.stdout in ("", "thread_id\tturns\tstored_bytes\tfirst_turn\tlast_turn\n")


# --- turns ----------------------------------------------------------------------------


def test_turns_from_manifests(archive: Archive) -> None:
    thread = _first_thread(archive)
    result = invoke(archive, "turns", thread, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["turn"] for row in rows] == sorted(archive.turns[thread])
    for row in rows:
        events = archive.turns[thread][row["turn"]]
        assert row["events"] == len(events)
        assert row["raw_bytes"] == len(b"".join(e.to_json() + b"\n" for e in events))
        assert row["first_timestamp"] == events[0].timestamp
        assert row["last_timestamp"] == events[-1].timestamp
        assert row["finished"] is True
        assert row["ratio"] == pytest.approx(row["raw_bytes"] / row["stored_bytes"])
    table = invoke(archive, "turns", thread)
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == [
        "turn",
        "events",
        "raw_bytes",
        "stored_bytes",
        "ratio",
        "first",
        "last",
        "finished",
        "stored_in",
    ]


def test_turns_of_an_unknown_thread(archive: Archive) -> None:
    result = invoke(archive, "turns", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND == 3
    assert result.stderr == "error: thread 'nope' not found (no turns)\n"


def test_turns_with_a_missing_manifest(archive: Archive, backdoor: Any) -> None:
    thread = _first_thread(archive)
    key = KeyLayout.for_prefix(PREFIX).turn_key(thread, 1)
    backdoor.put_object(Bucket=archive.bucket, Key=key, Body=b"no manifest")
    result = invoke(archive, "turns", thread)
    assert result.exit_code == ExitCode.INTEGRITY == 4
    assert result.stderr == f"error: {key}: object has no s3es-manifest metadata\n"
    assert "unreadable manifest" in result.stdout


# --- cat ------------------------------------------------------------------------------


def test_cat_is_byte_for_byte(archive: Archive) -> None:
    for thread in archive.turns:
        result = invoke(archive, "cat", thread)
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes == archive.payload(thread)


def test_cat_one_turn(archive: Archive) -> None:
    thread = _first_thread(archive)
    result = invoke(archive, "cat", thread, "2")
    assert result.exit_code == 0
    assert result.stdout_bytes == archive.payload(thread, 2)


def test_cat_keeps_unusual_json_exactly(archive: Archive, backdoor: Any) -> None:
    line = (
        b'{"event_id":"e3f4ce37-bc92-4b5f-9e82-2e44a4bc5aa2", "sequence":18446744073709551615,'
        b'"timestamp":"2025-06-01T12:00:00.5393847579+02:00","type":"x","n":1.0e5,'
        b'"s":"\\u00e9"}'
    )
    encoded = TurnCodec().encode("odd", 5, [AgentEventEnvelope.from_json(line)], writer="w")
    key = KeyLayout.for_prefix(PREFIX).turn_key("odd", 5)
    backdoor.put_object(
        Bucket=archive.bucket, Key=key, Body=encoded.body, Metadata=encoded.manifest.to_metadata()
    )
    result = invoke(archive, "cat", "odd")
    assert result.stdout_bytes == line + b"\n"


def test_cat_unknown_thread_and_turn(archive: Archive) -> None:
    result = invoke(archive, "cat", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == "error: thread 'nope' not found\n"
    thread = _first_thread(archive)
    result = invoke(archive, "cat", thread, "99")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == f"error: turn 99 of thread {thread!r} not found\n"


def test_cat_rejects_a_bad_turn_number(archive: Archive) -> None:
    result = invoke(archive, "cat", "t", "-1")
    assert result.exit_code == ExitCode.USAGE


def test_cat_of_a_corrupt_object(archive: Archive, backdoor: Any) -> None:
    thread = _first_thread(archive)
    key = _plant_corrupt(backdoor, archive, thread, 2)
    result = invoke(archive, "cat", thread)
    assert result.exit_code == ExitCode.INTEGRITY
    assert result.stderr.startswith(f"error: integrity check failed: {key}: ")
    assert "Traceback" not in result.output
    assert result.stdout_bytes == archive.payload(thread, 1)  # the good turn before it


def test_cat_into_a_closed_pipe_is_quiet(archive: Archive, backdoor: Any) -> None:
    # One turn far larger than a pipe buffer, so the writer meets the closed pipe.
    events = [
        AgentEventEnvelope.create("text_delta", {"delta": "x" * 200}, sequence=i)
        for i in range(2000)
    ]
    encoded = TurnCodec().encode("big", 1, events, writer="w")
    backdoor.put_object(
        Bucket=archive.bucket,
        Key=KeyLayout.for_prefix(PREFIX).turn_key("big", 1),
        Body=encoded.body,
        Metadata=encoded.manifest.to_metadata(),
    )
    env = {
        **os.environ,
        "S3_EVENTSTORE_URL": archive.url,
        "S3_EVENTSTORE_ENDPOINT_URL": archive.endpoint_url,
    }
    command = f"{sys.executable} -m s3_eventstore cat big | head -n 1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        check=False,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.stdout == events[0].to_json() + b"\n"
    assert done.stderr == b""
    assert done.returncode == 0


# --- export ---------------------------------------------------------------------------


def test_export_jsonl_to_stdout(archive: Archive) -> None:
    thread = _first_thread(archive)
    result = invoke(archive, "export", thread, "-o", "-")
    assert result.exit_code == 0, result.output
    rows = result.stdout_bytes.splitlines()
    expected = [
        (thread, t, e) for t in sorted(archive.turns[thread]) for e in archive.turns[thread][t]
    ]
    assert len(rows) == len(expected)
    for row, (thread_id, turn, event) in zip(rows, expected, strict=True):
        assert row.startswith(
            json.dumps({"thread_id": thread_id, "turn": turn}, separators=(",", ":"))[:-1].encode()
        )
        assert row.endswith(b',"event":' + event.to_json() + b"}")


def test_export_everything_to_parquet(archive: Archive, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    target = tmp_path / "all.parquet"
    result = invoke(archive, "export", "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    total = sum(len(events) for turns in archive.turns.values() for events in turns.values())
    assert summary["events"] == total
    table = pq.read_table(target)
    assert table.column_names == [
        "thread_id",
        "turn",
        "event_id",
        "sequence",
        "timestamp",
        "type",
        "fields",
        "envelope",
    ]
    rows = table.to_pylist()
    got = sorted((r["thread_id"], r["turn"], r["envelope"].encode()) for r in rows)
    want = sorted(
        (t, n, e.to_json())
        for t, turns in archive.turns.items()
        for n, es in turns.items()
        for e in es
    )
    assert got == want
    for row in rows:
        event = AgentEventEnvelope.from_json(row["envelope"])
        assert row["event_id"] == str(event.event_id)
        assert row["sequence"] == event.sequence
        assert json.loads(row["fields"]) == event.fields
    assert not (tmp_path / "all.parquet.partial").exists()


def test_export_of_an_unknown_thread(archive: Archive, tmp_path: Path) -> None:
    thread = _first_thread(archive)
    result = invoke(archive, "export", thread, "nope", "-o", str(tmp_path / "x.jsonl"))
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == "error: thread not found: 'nope'\n"
    assert (tmp_path / "x.jsonl").read_bytes().count(b"\n") == len(archive.events(thread))


def test_export_leaves_no_file_when_an_object_is_corrupt(
    archive: Archive, backdoor: Any, tmp_path: Path
) -> None:
    thread = _first_thread(archive)
    _plant_corrupt(backdoor, archive, thread, 1)
    result = invoke(archive, "export", "-o", str(tmp_path / "x.jsonl"))
    assert result.exit_code == ExitCode.INTEGRITY
    assert list(tmp_path.iterdir()) == []


# --- verify ---------------------------------------------------------------------------


def test_verify_clean(archive: Archive) -> None:
    result = invoke(archive, "verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    objects = sum(len(turns) for turns in archive.turns.values())
    assert report["ok"] is True
    assert report["objects_checked"] == report["objects_ok"] == objects


def test_verify_finds_a_corrupt_object(archive: Archive, backdoor: Any) -> None:
    thread = _first_thread(archive)
    key = _plant_corrupt(backdoor, archive, thread, 1)
    result = invoke(archive, "verify")
    assert result.exit_code == ExitCode.INTEGRITY
    assert f"BAD  {key}: CorruptObjectError: " in result.stdout
    assert result.stderr == "error: 1 object failed verification\n"
    one = invoke(archive, "verify", thread, "--json")
    assert one.exit_code == ExitCode.INTEGRITY
    assert [p["key"] for p in json.loads(one.stdout)["problems"]] == [key]


def test_verify_lists_orphan_segments_without_failing(archive: Archive, backdoor: Any) -> None:
    thread = next(t for t, turns in archive.turns.items() if len(turns) >= 2)
    assert invoke(archive, "compact", thread).exit_code == 0
    folder = KeyLayout(f"{PREFIX}/").thread_folder(thread)
    keys = all_keys(backdoor, archive.bucket, folder)
    (segment,) = [key for key in keys if "/seg-" in key]
    for stub in (key for key in keys if key != segment):
        # what a clear racing the compaction leaves: the turn keys gone, the segment not
        backdoor.delete_object(Bucket=archive.bucket, Key=stub)
    result = invoke(archive, "verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["ok"], report["orphans"]) == (True, [segment])
    text = invoke(archive, "verify", thread)
    assert text.exit_code == 0
    assert f"ORPHAN {segment}: a segment no stub names" in text.stdout


def test_verify_unknown_thread_and_empty_prefix(archive: Archive, bucket: str) -> None:
    result = invoke(archive, "verify", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == "error: thread not found: 'nope'\n"
    empty = invoke(
        None, "verify", "--url", f"s3://{bucket}/empty", endpoint_url=archive.endpoint_url
    )
    assert empty.exit_code == 0
    assert empty.stdout == "checked 0 objects (0 bytes, 0 events): 0 ok, 0 bad\n"


# --- stats ----------------------------------------------------------------------------


def test_stats_json(archive: Archive) -> None:
    result = invoke(archive, "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    all_turns = [events for turns in archive.turns.values() for events in turns.values()]
    assert stats["threads"] == len(archive.turns)
    assert stats["objects"] == len(all_turns)
    assert stats["events"] == sum(len(events) for events in all_turns)
    assert stats["raw_bytes"] == sum(len(e.to_json()) + 1 for es in all_turns for e in es)
    assert [c["storage_class"] for c in stats["costs"]["classes"]] == [
        "STANDARD",
        "STANDARD_IA",
        "GLACIER_IR",
        "GLACIER",
        "DEEP_ARCHIVE",
    ]
    fast = json.loads(invoke(archive, "stats", "--no-manifests", "--json").stdout)
    assert fast["events"] is None
    assert fast["stored_bytes"] == stats["stored_bytes"]


def test_stats_text_and_empty_prefix(archive: Archive, bucket: str) -> None:
    result = invoke(archive, "stats")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"threads        {len(archive.turns)}"
    empty = invoke(None, "stats", "--url", f"s3://{bucket}/e", endpoint_url=archive.endpoint_url)
    assert empty.exit_code == 0
    assert "objects        0" in empty.stdout


# --- clear ----------------------------------------------------------------------------


def test_clear_asks_first(archive: Archive, backdoor: Any) -> None:
    thread = _first_thread(archive)
    folder = KeyLayout.for_prefix(PREFIX).thread_folder(thread)
    declined = invoke(archive, "clear", thread, input="n\n")
    assert declined.exit_code == ExitCode.ABORTED == 1
    assert "Delete 2 objects of thread" in declined.stderr
    assert declined.stdout == ""
    assert len(all_keys(backdoor, archive.bucket, folder)) == 2
    done = invoke(archive, "clear", thread, "--yes")
    assert done.exit_code == 0
    assert done.stdout == f"deleted 2 objects of thread {thread!r}\n"
    assert all_keys(backdoor, archive.bucket, folder) == []
    again = invoke(archive, "clear", thread, "--yes")
    assert again.exit_code == ExitCode.NOT_FOUND
    assert again.stderr == f"error: thread {thread!r} not found (no objects)\n"


# --- doctor ---------------------------------------------------------------------------


def test_doctor_reports_every_check(archive: Archive) -> None:
    result = invoke(archive, "doctor", "--json")
    report = json.loads(result.stdout)
    assert report["checks"]
    assert result.exit_code == (0 if report["ok"] else ExitCode.STORAGE)
    assert report["cleaned_up"] is True
    # moto stores a wrong checksum: something the store only uses when present, so an
    # advisory on stderr and exit 0, not a failure.
    assert report["ok"] is True
    assert result.exit_code == 0
    (check,) = [c for c in report["checks"] if not c["ok"]]
    assert (check["name"], check["required"]) == ("wrong_checksum_rejected", False)
    assert result.stderr == (
        "note: the endpoint lacks (advisory, not required): wrong_checksum_rejected\n"
    )
    assert (report["missing"], report["advisories"]) == ([], ["wrong_checksum_rejected"])


def test_cli_imports_stay_light() -> None:
    code = (
        "import sys, s3_eventstore, s3_eventstore.cli; "
        "print(sorted(m for m in ('duckdb', 'pyarrow', 'rich') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_main_is_the_group() -> None:
    import click

    assert set(COMMANDS) == set(main.list_commands(click.Context(main)))


# --- compact and train-dictionary ------------------------------------------------------


def test_compact_threads_then_read_back_unchanged(archive: Archive) -> None:
    thread = next(t for t, turns in archive.turns.items() if len(turns) >= 2)
    result = invoke(archive, "compact", thread, "--json")
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["threads"]
    assert report["thread_id"] == thread
    assert report["turns_compacted"] == len(archive.turns[thread])
    assert len(report["segments_written"]) == 1
    assert report["stubs_written"] == len(archive.turns[thread])
    cat = invoke(archive, "cat", thread)
    assert cat.exit_code == 0, cat.output
    assert cat.stdout_bytes == archive.payload(thread)


def test_compact_idle_compacts_every_thread(archive: Archive) -> None:
    result = invoke(archive, "compact", "--idle-for", "0")
    assert result.exit_code == 0, result.output
    multi_turn = [t for t, turns in archive.turns.items() if len(turns) >= 2]
    assert re.fullmatch(
        rf"compacted {len(multi_turn)} of \d+ threads?", result.stdout.splitlines()[-1]
    )


def test_compact_needs_threads_or_idle_for(archive: Archive) -> None:
    result = invoke(archive, "compact")
    assert result.exit_code == ExitCode.USAGE
    assert "or give --idle-for SECONDS" in result.output


def test_train_dictionary_prints_its_id(archive: Archive) -> None:
    result = invoke(archive, "train-dictionary", "--json", "--size-kib", "4")
    if result.exit_code != 0:  # the fixture may be too small to train on: say so clearly
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "too few" in result.stderr
        return
    dictionary_id = json.loads(result.stdout)["dictionary_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", dictionary_id)
