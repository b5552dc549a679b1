"""The operator's first hour (issue 14): a local archive without AWS, and a CLI that
tells the truth. Real parts only: the moto server over HTTP, subprocesses for `serve`
and `demo --keep`, the README's own command lines."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore.cli import COMMANDS
from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.demo.embedded import CREDENTIALS, EmbeddedS3Server
from s3_eventstore.demo.localserver import LocalArchive
from s3_eventstore.envelope import AgentEventEnvelope
from tests.archive_fixtures import Archive, archive, cli_env, invoke
from tests.conftest import all_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore import S3EventStore

__all__ = ["archive", "cli_env"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("cli_env")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI = [sys.executable, "-m", "s3_eventstore"]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_EVENTSTORE_", "AWS_ENDPOINT_URL")) and k != "AWS_PROFILE"
    }
    env.update(extra)
    return env


class Served:
    """A `serve` subprocess and the environment its export lines give."""

    def __init__(self, process: subprocess.Popen[str], exports: list[str]) -> None:
        self.process = process
        self.exports = exports
        self.env: dict[str, str] = {}
        for line in exports:
            words = shlex.split(line)
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                self.env[name] = value

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        _, err = self.process.communicate(timeout=120)
        return self.process.returncode, err


def _start(args: list[str], *, until: str = "unset AWS_PROFILE") -> Served:
    """Start a long-running command and read stdout until its export lines are out."""
    process = subprocess.Popen(
        [*CLI, *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip() == until:
            break
    else:
        _, err = process.communicate(timeout=60)
        pytest.fail(f"{args} ended without export lines: {lines} {err}")
    return Served(process, [line for line in lines if line.startswith(("export ", "unset "))])


@pytest.fixture
def served() -> Iterator[Served]:
    server = _start(["serve", "--port", "0"])
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def _run(*args: str, env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        check=False,
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


# --- a local archive: serve, demo --keep, and every CLI example of the README ------------


def readme_command_lines() -> list[str]:
    """Every command line of README.md's shell blocks after the set-up commands, with
    continuation lines joined (an open quote goes on)."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)[1:]  # [0]: the set-up commands
    lines: list[str] = []
    for block in blocks:
        pending = ""
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on
                continue
            if pending.strip():
                lines.append(pending)
            pending = ""
    return lines


def readme_cli_examples() -> list[list[str]]:
    """The ``s3-eventstore`` commands of :func:`readme_command_lines`, as argv."""
    commands = []
    for line in readme_command_lines():
        for part in line.split("|"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "s3-eventstore":
                commands.append(words[1:])
    return commands


def test_the_readme_shows_the_local_path_and_examples() -> None:
    commands = readme_cli_examples()
    assert [argv[0] for argv in commands[:2]] == ["serve", "demo"]
    assert "--keep" in commands[1]
    names = {argv[0] for argv in commands}
    for name in ("threads", "turns", "cat", "verify", "export", "stats", "doctor", "query"):
        assert name in names, name


def test_serve_then_demo_keep_then_every_readme_example(served: Served, tmp_path: Path) -> None:
    env = served.env
    assert env["S3_EVENTSTORE_URL"] == "s3://local-archive/agents"
    assert env["S3_EVENTSTORE_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert env["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"]
    assert env["AWS_REGION"]
    demo = _run("demo", "--keep", "--threads", "3", "--turns", "2", "--events", "5", env=env)
    assert demo.returncode == 0, demo.stderr
    assert "archive        s3://local-archive/agents/ at http://127.0.0.1:" in demo.stdout
    # The README's lines as a user types them: the `s3-eventstore` script of this
    # checkout, through bash, pipes and all (minus `export` of an AWS archive URL).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "s3-eventstore"
    script.write_text(f'#!/bin/sh\nexec {shlex.join(CLI)} "$@"\n')
    script.chmod(0o755)
    lines = [
        line
        for line in readme_command_lines()
        if not line.startswith(("export ", "s3-eventstore serve", "s3-eventstore demo"))
    ]
    if shutil.which("jq") is None:  # a faithful stand-in for the one filter README uses
        stand_in = f"{shlex.quote(sys.executable)} -c {shlex.quote(JQ_TYPE)}"
        lines = [line.replace("jq -r .type", stand_in) for line in lines]
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        ["bash", "-euxo", "pipefail", "-c", "\n".join(lines)],
        check=False,
        cwd=work,
        env=_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    traced = re.findall(r"^\++ (s3-eventstore .*)$", done.stderr, re.MULTILINE)
    ran = {line.split()[1] for line in traced}
    assert {"threads", "turns", "cat", "verify", "export", "stats", "doctor", "query"} <= ran
    assert (work / "archive.parquet").stat().st_size > 0
    assert (work / "all.jsonl").read_bytes().count(b"\n") == 3 * 2 * 5
    code, err = served.stop()
    assert code == 0, err


JQ_TYPE = "import json, sys\nfor line in sys.stdin:\n    print(json.loads(line)['type'])"


def test_demo_keep_on_its_embedded_server_keeps_serving_until_stopped() -> None:
    kept = _start(["demo", "--keep", "--threads", "2", "--turns", "2", "--events", "3"])
    try:
        assert kept.env["S3_EVENTSTORE_URL"].startswith("s3://demo-")
        listed = _run("threads", "--details", "--json", env=kept.env)
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(rows) == 2
        assert all(row["turns"] >= 1 for row in rows)
    finally:
        code, err = kept.stop()
    assert code == 0, err
    assert "Ctrl-C here stops the server" in err


ODD_OBJECTS = {"odd/b": (b"x" * 10, {"m": "1"}), "odd/\u00e9 %": (b"", {}), "c": (bytes(256), {})}


def test_serve_keeps_its_data_in_a_folder(tmp_path: Path) -> None:
    import boto3

    first = _start(["serve", "--port", "0", "--data-dir", str(tmp_path)])
    demo = _run("demo", "--threads", "2", "--turns", "2", "--events", "3", env=first.env)
    assert demo.returncode == 0, demo.stderr
    client = boto3.client("s3", endpoint_url=first.env["S3_EVENTSTORE_ENDPOINT_URL"], **CREDENTIALS)
    client.create_bucket(Bucket="other")
    for key, (body, metadata) in ODD_OBJECTS.items():
        client.put_object(Bucket="other", Key=key, Body=body, Metadata=metadata)
    before = _run("threads", "-d", env=first.env).stdout
    code, err = first.stop()
    assert code == 0, err
    assert f"saved {4 + len(ODD_OBJECTS)} objects" in err
    second = _start(["serve", "--port", "0", "--data-dir", str(tmp_path)])
    try:
        after = _run("threads", "-d", env=second.env)
        assert after.returncode == 0, after.stderr
        assert after.stdout == before
        verified = _run("verify", env=second.env)
        assert verified.returncode == 0, verified.stdout
        client = boto3.client(
            "s3", endpoint_url=second.env["S3_EVENTSTORE_ENDPOINT_URL"], **CREDENTIALS
        )
        for key, (body, metadata) in ODD_OBJECTS.items():
            got = client.get_object(Bucket="other", Key=key)
            assert (got["Body"].read(), got["Metadata"]) == (body, metadata)
    finally:
        second.stop()


def test_an_unreadable_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "index.json").write_text("{not json")
    result = _run("serve", "--port", "0", "--data-dir", str(tmp_path), env={})
    assert result.returncode == ExitCode.USAGE
    assert "cannot load the local archive" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_taken_port_is_a_usage_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("serve", "--port", str(port), env={})
    assert result.returncode == ExitCode.USAGE
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_export_lines_quote_for_the_shell() -> None:
    lines = LocalArchive("http://127.0.0.1:1", "s3://b/p q").export_lines()
    assert "export S3_EVENTSTORE_URL='s3://b/p q'" in lines
    assert lines[-1] == "unset AWS_PROFILE"


# --- demo: the same archive options as every command ------------------------------------


def test_demo_honours_the_endpoint_and_url_from_the_environment(
    archive: Archive, backdoor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_EVENTSTORE_URL", f"s3://{archive.bucket}/demo-env")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", archive.endpoint_url)
    result = invoke(None, "demo", "--threads", "2", "--turns", "2", "--events", "3", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["bucket"] == archive.bucket
    assert len(all_keys(backdoor, archive.bucket, "demo-env/")) == report["objects"] == 4


def test_demo_twice_into_one_archive_checks_only_its_own_threads(archive: Archive) -> None:
    for _ in range(2):
        result = invoke(archive, "demo", "--threads", "2", "--turns", "2", "--events", "2")
        assert result.exit_code == 0, result.output


def test_demo_against_a_missing_bucket_fails_cleanly(s3_server: EmbeddedS3Server) -> None:
    result = _run(
        "demo",
        "--url",
        "s3://no-such-bucket-demo/p",
        "--threads",
        "2",
        env={"S3_EVENTSTORE_ENDPOINT_URL": s3_server.endpoint_url, **_credentials()},
    )
    assert result.returncode == ExitCode.STORAGE
    assert result.stderr.startswith("error: bucket not found:"), result.stderr
    assert "Unclosed" not in result.stderr
    assert "open turn" not in result.stderr
    assert "Traceback" not in result.stderr


def _credentials() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_REGION": CREDENTIALS["region_name"],
    }


def test_demo_with_an_endpoint_but_no_archive_is_a_usage_error(
    s3_server: EmbeddedS3Server,
) -> None:
    result = invoke(None, "demo", endpoint_url=s3_server.endpoint_url)
    assert result.exit_code == ExitCode.USAGE
    assert "--url s3://BUCKET/PREFIX" in result.output


def test_demo_into_a_closed_pipe_exits_0() -> None:
    script = (
        f"{shlex.join(CLI)} demo --threads 2 --turns 1 --events 2 | head -1 >/dev/null; "
        'echo "${PIPESTATUS[0]}"'
    )
    done = subprocess.run(
        ["bash", "-c", script],
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() == "0", done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["threads"],
        ["stats"],
        ["doctor"],
        ["query", "SELECT 1"],
        ["demo", "--url", "s3://b/p"],
        ["cat", "t"],
    ],
)
@pytest.mark.parametrize("endpoint", ["127.0.0.1:5077", "localhost", "ftp://h:1", "http://h/p"])
def test_an_endpoint_without_http_scheme_is_a_usage_error(argv: list[str], endpoint: str) -> None:
    result = invoke(None, *argv, "--url", "s3://b/p", "--endpoint-url", endpoint)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "is not an http(s)://HOST[:PORT] URL" in result.output
    if "://" not in endpoint:
        assert f"did you mean http://{endpoint}?" in result.output


@pytest.mark.parametrize(
    ("argv", "hidden", "extra"),
    [
        (["demo"], "moto.server", "server"),
        (["query", "SELECT 1"], "duckdb", "analytics"),
        (["export", "-o", "{tmp}/x.parquet"], "pyarrow", "parquet"),
    ],
)
def test_a_missing_extra_is_exit_6_everywhere(
    archive: Archive,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    hidden: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, hidden, None)
    argv = [word.replace("{tmp}", str(tmp_path)) for word in argv]
    result = invoke(None if argv[0] == "demo" else archive, *argv)
    assert result.exit_code == ExitCode.MISSING_EXTRA == 6, result.output
    assert f"pip install 's3-eventstore[{extra}]'" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- doctor: requirements fail, advisories are reported ----------------------------------


def test_doctor_on_the_local_server_passes_with_an_advisory(archive: Archive) -> None:
    result = invoke(archive, "doctor")
    assert result.exit_code == 0, result.output
    assert "no   wrong_checksum_rejected (advisory):" in result.stdout
    assert "note: the endpoint lacks (advisory, not required): wrong_checksum_rejected" in (
        result.stderr
    )
    data = json.loads(invoke(archive, "doctor", "--json").stdout)
    assert (data["ok"], data["missing"], data["advisories"]) == (
        True,
        [],
        ["wrong_checksum_rejected"],
    )
    assert {c["name"]: c["required"] for c in data["checks"]}["conditional_put"] is True


# --- compact --------------------------------------------------------------------------


def test_compact_of_an_unknown_thread_exits_3_and_compacts_the_rest(archive: Archive) -> None:
    thread = next(t for t, turns in archive.turns.items() if len(turns) >= 2)
    result = invoke(archive, "compact", "nope", thread)
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr == "error: thread not found: 'nope'\n"
    assert result.stdout.splitlines()[-1] == "compacted 1 of 1 thread"
    again = invoke(archive, "compact", thread)
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [
        f"{thread}: nothing to compact (already compacted)",
        "compacted 0 of 1 thread",
    ]
    only_unknown = invoke(archive, "compact", "nope", "--json")
    assert only_unknown.exit_code == ExitCode.NOT_FOUND
    assert json.loads(only_unknown.stdout) == {"threads": [], "missing_threads": ["nope"]}


@pytest.mark.parametrize(
    ("option", "value", "flag"),
    [
        ("--idle-for", "-5", "--idle-for"),
        ("--idle-for", "nan", "--idle-for"),
        ("--idle-for", "inf", "--idle-for"),
        ("--min-turns", "0", "--min-turns"),
        ("--max-segment-mib", "0", "--max-segment-mib"),
        ("--max-segment-mib", "99999", "--max-segment-mib"),
    ],
)
def test_compact_rejects_bad_numbers_naming_the_flag(
    archive: Archive, option: str, value: str, flag: str
) -> None:
    result = invoke(archive, "compact", "--idle-for", "0", option, value)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"Invalid value for '{flag}'" in result.output
    assert "min_turns" not in result.output
    assert "max_segment_bytes" not in result.output


@pytest.mark.parametrize(("option", "value"), [("--size-kib", "0"), ("--max-threads", "0")])
def test_train_dictionary_rejects_bad_numbers_naming_the_flag(
    archive: Archive, option: str, value: str
) -> None:
    result = invoke(archive, "train-dictionary", option, value)
    assert result.exit_code == ExitCode.USAGE
    assert f"Invalid value for '{option}'" in result.output


def test_train_dictionary_shows_progress_on_stderr(archive: Archive) -> None:
    result = invoke(archive, "train-dictionary", "--size-kib", "4")
    assert "sampling the finished turns of 6 threads" in result.stderr
    quiet = invoke(archive, "train-dictionary", "--size-kib", "4", "--quiet")
    assert "sampling" not in quiet.stderr


# --- export: never destroy a file ------------------------------------------------------


def test_export_into_a_missing_directory_is_a_clear_error(archive: Archive, tmp_path: Path) -> None:
    result = invoke(archive, "export", "-o", str(tmp_path / "missing_dir" / "x.jsonl"))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: cannot write ")
    assert "no directory" in result.stderr
    assert "Traceback" not in result.output


def test_export_refuses_to_overwrite_without_force(archive: Archive, tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_bytes(b"keep me")
    (tmp_path / "precious.txt.partial").write_bytes(b"mine too")
    result = invoke(archive, "export", "-o", str(precious))
    assert result.exit_code == ExitCode.USAGE
    assert "exists: give --force to replace it" in result.stderr
    missing = invoke(archive, "export", "nosuchthread", "-o", str(precious), "--force")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert precious.read_bytes() == b"keep me"
    assert (tmp_path / "precious.txt.partial").read_bytes() == b"mine too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt", "precious.txt.partial"]
    forced = invoke(archive, "export", "-o", str(precious), "--force")
    assert forced.exit_code == 0, forced.output
    assert precious.read_bytes().count(b"\n") == sum(len(archive.events(t)) for t in archive.turns)
    assert (tmp_path / "precious.txt.partial").read_bytes() == b"mine too"


def test_export_says_1_thread(archive: Archive, tmp_path: Path) -> None:
    thread = next(iter(archive.turns))
    result = invoke(archive, "export", thread, "-o", str(tmp_path / "one.jsonl"))
    assert result.exit_code == 0
    assert re.fullmatch(
        r"exported \d+ events of \d+ turns? in 1 thread to .* \(jsonl\)\n", result.stdout
    )


# --- prompts, pipes, ids -----------------------------------------------------------------


def test_clear_prompts_on_stderr_so_json_stays_parseable(archive: Archive) -> None:
    thread = next(iter(archive.turns))
    result = invoke(archive, "clear", thread, "--json", input="y\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "thread_id": thread,
        "deleted_objects": len(archive.turns[thread]),
    }
    assert "Delete " in result.stderr


WEIRD_IDS = (
    "new\nline",
    " lead",
    "trail ",
    "esc\x1b[31mred",
    "bell\x07",
    "tab\there",
    "back\\n",
    "bidi\u202eevil",
    "zero\u200bwidth",
)


@pytest.fixture
async def weird(archive: Archive, s3_store: S3EventStore) -> Archive:
    for thread_id in WEIRD_IDS:
        event = AgentEventEnvelope.create("start", {"thread_id": thread_id}, sequence=0)
        await s3_store.append(thread_id, 1, event)
        await s3_store.finish_turn(thread_id, 1)
        archive.turns[thread_id] = {1: (event,)}
    return archive


@pytest.mark.parametrize("listing", [["-0"], ["--json"]])
def test_listings_round_trip_every_id_into_threads_from(weird: Archive, listing: list[str]) -> None:
    listed = invoke(weird, "threads", *listing)
    assert listed.exit_code == 0, listed.output
    exported = invoke(weird, "export", "--threads-from", "-", "-o", "-", input=listed.stdout_bytes)
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert {row["thread_id"] for row in rows} == set(weird.turns)
    verified = invoke(weird, "verify", "--threads-from", "-", "--json", input=listed.stdout_bytes)
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["objects_checked"] == sum(
        len(turns) for turns in weird.turns.values()
    )


def test_threads_from_plain_lines_keeps_spaces(weird: Archive) -> None:
    result = invoke(weird, "export", "--threads-from", "-", "-o", "-", input=" lead\ntrail \n")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["thread_id"] for line in result.stdout.splitlines()} == {
        " lead",
        "trail ",
    }


@pytest.mark.parametrize("argv", [["threads"], ["threads", "-d"]])
def test_text_output_escapes_control_characters(weird: Archive, argv: list[str]) -> None:
    result = invoke(weird, *argv)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "\x07" not in result.stdout
    assert "esc\\x1b[31mred" in result.stdout
    assert "bell\\x07" in result.stdout
    assert "new\\nline" in result.stdout
    # A real backslash is doubled, so "back\\n" and a real newline never print alike.
    assert "back\\\\n" in result.stdout
    # Invisible and bidirectional format characters cannot reorder or hide text.
    assert "\u202e" not in result.stdout
    assert "\u200b" not in result.stdout
    assert "bidi\\u202eevil" in result.stdout
    assert "zero\\u200bwidth" in result.stdout


@pytest.fixture
async def with_nul(archive: Archive, s3_store: S3EventStore) -> Archive:
    event = AgentEventEnvelope.create("start", {}, sequence=0)
    await s3_store.append("nul\x00id", 1, event)
    await s3_store.finish_turn("nul\x00id", 1)
    return archive


def test_threads_null_refuses_an_id_holding_nul(with_nul: Archive) -> None:
    result = invoke(with_nul, "threads", "-0")
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout_bytes.count(b"\0") == len(with_nul.turns)  # every other id
    assert "1 thread id with a NUL byte left out" in result.stderr
    assert "'nul\\x00id'" in result.stderr
    as_json = invoke(with_nul, "threads", "--json")
    assert {"thread_id": "nul\x00id"} in [json.loads(line) for line in as_json.stdout.splitlines()]


def test_cat_with_a_bad_turn_says_what_a_turn_is(archive: Archive) -> None:
    result = invoke(archive, "cat", next(iter(archive.turns)), "abc")
    assert result.exit_code == ExitCode.USAGE
    assert "'abc' is not a turn number (an integer 0..2^64-1)" in result.output
    assert "valid integer range" not in result.output


# --- query, stats, docs -------------------------------------------------------------------


def test_query_json_like_every_command(archive: Archive) -> None:
    sql = "SELECT count(*) AS n FROM events"
    as_json = invoke(archive, "query", "--json", sql)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {"n": sum(len(archive.events(t)) for t in archive.turns)}
    alias = invoke(archive, "query", "--format", "json", sql)
    assert alias.stdout == as_json.stdout
    as_csv = invoke(archive, "query", "--csv", sql)
    assert as_csv.stdout.splitlines()[0] == "n"
    both = invoke(archive, "query", "--json", "--csv", sql)
    assert both.exit_code == ExitCode.USAGE
    assert "--format" not in invoke(None, "query", "--help").output


def test_stats_json_money_has_fixed_precision(archive: Archive) -> None:
    result = invoke(archive, "stats", "--json")
    assert result.exit_code == 0
    costs = json.loads(result.stdout)["costs"]
    values = [costs["put_usd"], costs["get_usd"]]
    for cost in costs["classes"]:
        values += [cost["storage_usd_month"], cost["transition_usd"]]
    assert all(value == round(value, 9) for value in values)
    costs_text = result.stdout[result.stdout.index('"costs"') :]
    numbers = re.findall(r"\d+\.\d+(?:e-?\d+)?", costs_text)
    assert all(len(n.split(".")[1].split("e")[0]) <= 9 for n in numbers), numbers


def test_docs_cli_table_lists_every_command() -> None:
    text = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in COMMANDS:
        assert re.search(rf"^\| `{re.escape(name)}[ `]", table, re.MULTILINE), name
    assert "| 6 |" in text


def test_the_cli_imports_only_the_command_it_runs() -> None:
    code = (
        "import sys\n"
        "from s3_eventstore.cli import main\n"
        "import click\n"
        "main.get_command(click.Context(main), 'cat')\n"
        "heavy = ('s3_eventstore.ops.catalog', 's3_eventstore.demo.demo',\n"
        "         's3_eventstore.demo.workload', 's3_eventstore.ops.analytics',\n"
        "         'aioboto3', 'moto', 'duckdb', 'pyarrow', 'rich', 's3_eventstore.cli.query',\n"
        "         's3_eventstore.cli.serve', 's3_eventstore.cli.demo')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['s3_eventstore.ops.catalog']"


# --- compacted threads stay in the overview ------------------------------------------------


def test_compacted_threads_are_described_by_every_command(archive: Archive) -> None:
    thread = next(t for t, turns in archive.turns.items() if len(turns) >= 2)
    before_turns = json.loads(invoke(archive, "stats", "--json").stdout)
    before = {
        json.loads(line)["thread_id"]: json.loads(line)
        for line in invoke(archive, "threads", "-d", "--json").stdout.splitlines()
    }
    compacted = invoke(archive, "compact", thread)
    assert compacted.exit_code == 0, compacted.output

    turns = invoke(archive, "turns", thread, "--json")
    assert turns.exit_code == 0, turns.output
    assert "not a turn object" not in turns.stderr
    rows = [json.loads(line) for line in turns.stdout.splitlines()]
    assert [row["turn"] for row in rows] == sorted(archive.turns[thread])
    assert all(row["compacted"] for row in rows)
    for row in rows:
        events = archive.turns[thread][row["turn"]]
        assert row["events"] == len(events)
        assert row["raw_bytes"] == len(b"".join(e.to_json() + b"\n" for e in events))
    table = invoke(archive, "turns", thread)
    assert all(line.split()[-1] == "segment" for line in table.stdout.splitlines()[1:])

    after = {
        json.loads(line)["thread_id"]: json.loads(line)
        for line in invoke(archive, "threads", "-d", "--json").stdout.splitlines()
    }
    row = after[thread]
    assert row["turns"] == len(archive.turns[thread]) == before[thread]["turns"]
    assert (row["first_turn"], row["last_turn"]) == (
        min(archive.turns[thread]),
        max(archive.turns[thread]),
    )
    assert row["segments"] == 1
    assert row["stored_bytes"] > 0
    assert row["other_objects"] == 0
    text = invoke(archive, "threads", "-d").stdout
    assert f"{thread}\t{len(archive.turns[thread])}\t" in text

    stats = json.loads(invoke(archive, "stats", "--json").stdout)
    assert stats["threads"] == before_turns["threads"] == len(archive.turns)
    assert stats["events"] == before_turns["events"]
    assert stats["raw_bytes"] == before_turns["raw_bytes"]
    assert stats["turns"] == sum(len(t) for t in archive.turns.values())
    assert stats["segments"] == 1
    # Compaction keeps each turn key as an 8-byte stub (the finish barrier, FORMAT.md
    # section 11) and adds the segment: one object more.
    assert stats["objects"] == before_turns["objects"] + 1
    assert stats["other_objects"] == 0
    assert stats["costs"]["objects"] == stats["objects"]
    fast = json.loads(invoke(archive, "stats", "--json", "--no-manifests").stdout)
    assert (fast["objects"], fast["segments"], fast["threads"]) == (
        stats["objects"],
        1,
        stats["threads"],
    )


async def test_store_requests_has_a_useful_repr(s3_store: S3EventStore) -> None:
    assert repr(s3_store.requests) == "RequestCounter(total=0)"
    event = AgentEventEnvelope.create("start", {}, sequence=0)
    await s3_store.append("t", 1, event)
    await s3_store.finish_turn("t", 1)
    await s3_store.get_turns("t")
    text = repr(s3_store.requests)
    assert text.startswith(f"RequestCounter(total={s3_store.requests.total}, ")
    for operation, count in s3_store.requests.snapshot().items():
        assert f"{operation}={count}" in text
    assert "PutObject=1" in text
