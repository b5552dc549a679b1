"""The CLI's start-up (issue 14, item 12): what a `threads`/`cat` process loads.

A small command is mostly start-up, so these tests guard the import discipline and the
start-up work that docs/BENCHMARKS.md ("CLI start-up") measured away. They run the
real entry point in a subprocess against the moto server and look at what the process
loaded; no timing is asserted (that is the benchmark's job: `python -m benchmarks
--only cli_calls`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from click.testing import CliRunner

from s3_eventstore import S3EventStore, StorageError
from s3_eventstore.cli import main, startup
from tests.archive_fixtures import Archive, archive, cli_env

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["archive", "cli_env"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("cli_env")

ROOT = Path(__file__).resolve().parent.parent

NEVER_FOR_READS = (
    "pyarrow",
    "duckdb",
    "rich",
    "pygments",
    "opentelemetry",
    "moto",
    "numpy",
    "aioboto3",
    "boto3",
    "httpx._main",
    "s3_eventstore.adapters",
    "s3_eventstore.telemetry",
    "s3_eventstore.sync",
    "s3_eventstore.demo",
    "s3_eventstore.testing",
    "s3_eventstore.ops.analytics",
    "s3_eventstore.ops.columnar",
    "s3_eventstore.ops.export",
    "s3_eventstore.cli.query",
    "s3_eventstore.cli.export",
    "s3_eventstore.cli.serve",
    "s3_eventstore.cli.demo",
)
"""Packages and modules a `threads`, `turns` or `cat` process must never load."""

# The entry point exactly as the `s3-eventstore` script calls it, reporting at exit what
# the process loaded and the garbage collector's state.
_DRIVER = """
import atexit, gc, json, os, sys

def report():
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    with open(os.environ["S3ES_STARTUP_REPORT"], "w") as out:
        json.dump({"modules": loaded, "frozen": gc.get_freeze_count(),
                   "gc_enabled": gc.isenabled()}, out)

atexit.register(report)
sys.argv = ["s3-eventstore", *sys.argv[1:]]
from s3_eventstore.cli import main
main()
"""


def _run_cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], Any]:
    report = tmp_path / "startup.json"
    env_report = {"S3ES_STARTUP_REPORT": str(report)}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER, *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, **env_report},
        capture_output=True,
        timeout=120,
    )
    return done, json.loads(report.read_text())


def _loaded(modules: list[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def _plain_thread(archive: Archive) -> str:
    return min(t for t in archive.turns if t.isascii() and t.isprintable() and " " not in t)


@pytest.mark.parametrize("command", ["threads", "cat", "turns"])
def test_a_read_command_loads_only_what_it_needs(
    archive: Archive, tmp_path: Path, command: str
) -> None:
    thread = _plain_thread(archive)
    args = [command] if command == "threads" else [command, thread]
    done, report = _run_cli(
        tmp_path, *args, "--url", archive.url, "--endpoint-url", archive.endpoint_url
    )
    assert done.returncode == 0, done.stderr.decode()
    if command == "cat":
        assert done.stdout == archive.payload(thread)
    elif command == "threads":
        assert thread.encode() + b"\n" in done.stdout
    modules = report["modules"]
    assert _loaded(modules, "aiobotocore")  # it did talk to S3: the check below is not vacuous
    assert _loaded(modules, "s3_eventstore.cli.browse")
    assert [name for name in NEVER_FOR_READS if _loaded(modules, name)] == []


def test_httpx_command_line_is_not_loaded_though_httpx_is(archive: Archive, tmp_path: Path) -> None:
    if importlib.util.find_spec("httpx") is None:
        pytest.skip("httpx is not installed here: aiobotocore does not import it")
    done, report = _run_cli(
        tmp_path, "threads", "--url", archive.url, "--endpoint-url", archive.endpoint_url
    )
    assert done.returncode == 0, done.stderr.decode()
    assert "httpx" in report["modules"]  # aiobotocore imported it
    assert "httpx._main" not in report["modules"]
    assert not _loaded(report["modules"], "rich")


def test_help_loads_no_s3_client_and_no_optional_extra(tmp_path: Path) -> None:
    done, report = _run_cli(tmp_path, "--help")
    assert done.returncode == 0
    assert b"threads" in done.stdout
    modules = report["modules"]
    assert _loaded(modules, "s3_eventstore.cli.query")  # --help lists (imports) every command
    heavy = [name for name in NEVER_FOR_READS if not name.startswith("s3_eventstore")]
    heavy += ["botocore", "aiobotocore", "aiohttp"]
    assert [name for name in heavy if _loaded(modules, name)] == []


def test_the_client_s_start_up_objects_are_frozen_and_gc_runs_after(
    archive: Archive, tmp_path: Path
) -> None:
    done, report = _run_cli(
        tmp_path, "threads", "--url", archive.url, "--endpoint-url", archive.endpoint_url
    )
    assert done.returncode == 0, done.stderr.decode()
    assert report["frozen"] > 10_000  # imports and the parsed S3 model
    assert report["gc_enabled"] is True


def test_click_s_test_runner_leaves_the_process_alone(archive: Archive) -> None:
    import gc

    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(
        main, ["threads", "--url", archive.url, "--endpoint-url", archive.endpoint_url]
    )
    assert result.exit_code == 0, result.output
    assert not startup.begun()
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
    assert "httpx._main" not in sys.modules or sys.modules["httpx._main"] is not None


def test_startup_allocations_restores_the_collector_as_it_was() -> None:
    import gc

    assert gc.isenabled()
    with startup.startup_allocations():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with startup.startup_allocations():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
    with pytest.raises(ValueError, match="boom"), startup.startup_allocations():
        raise ValueError("boom")
    assert gc.isenabled()


# --- no CA bundle for an http:// endpoint; TLS verified as before for https:// -----------


class _ConnectorSpy:
    def __init__(self) -> None:
        self.ssl: list[Any] = []


@pytest.fixture
def connector_spy(monkeypatch: pytest.MonkeyPatch) -> _ConnectorSpy:
    spy = _ConnectorSpy()
    original = aiohttp.TCPConnector.__init__

    def init(self: aiohttp.TCPConnector, *args: Any, **kwargs: Any) -> None:
        spy.ssl.append(kwargs.get("ssl"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "__init__", init)
    return spy


async def test_an_http_endpoint_s_client_loads_no_ca_bundle(
    s3_server: EmbeddedS3Server, bucket: str, connector_spy: _ConnectorSpy
) -> None:
    async with S3EventStore(
        bucket, "startup", endpoint_url=s3_server.endpoint_url, share_client=False
    ) as store:
        assert await store.get_turns("no-such-thread") == []
    # aiohttp's default verified context (ssl=True), not one loaded from a CA bundle.
    assert connector_spy.ssl == [True]


async def test_an_https_endpoint_s_client_still_verifies_with_the_bundle(
    connector_spy: _ConnectorSpy,
) -> None:
    store = S3EventStore(
        "any-bucket",
        "startup",
        endpoint_url="https://127.0.0.1:1",  # nothing listens: the connector is made first
        share_client=False,
        max_attempts=1,
    )
    with pytest.raises(StorageError):
        async with store:
            await store.get_turns("no-such-thread")
    assert len(connector_spy.ssl) == 1
    context = connector_spy.ssl[0]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.cert_store_stats()["x509_ca"] > 0  # the bundle botocore resolves
