"""Issue 13, servers: a trickling body is bounded by operation_timeout, every retry is
logged with its cause, every non-AWS endpoint is probed before the first write (loopback
included, once per endpoint per process), and checksum headers can be turned off."""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import (
    S3EventStore,
    StorageError,
    StorageUnavailableError,
    UnsafeEndpointError,
)
from s3_eventstore.cli.exit_codes import ExitCode
from s3_eventstore.ops.doctor import run_doctor
from s3_eventstore.s3.probe import forget_probes
from s3_eventstore.testing.conformance import make_event
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy, RequestInfo
from tests.archive_fixtures import Archive, archive, cli_env, invoke
from tests.conftest import all_keys
from tests.faults_fixtures import PREFIX, read_behind, running_proxy, store_via

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["archive", "cli_env"]  # fixtures used by name

EVERY = 1_000_000
"""A plan count that outlasts any test: the proxy misbehaves for good."""


@pytest.fixture
def proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    with running_proxy(s3_server) as fault_proxy:
        yield fault_proxy


async def finish(store: S3EventStore, thread: str, turn: int, events: int = 2) -> list[Any]:
    appended = [make_event(i) for i in range(events)]
    for event in appended:
        await store.append(thread, turn, event)
    await store.finish_turn(thread, turn)
    return appended


# --- 7. a slow body is bounded; retries are logged ------------------------------------------


async def test_a_trickling_body_is_cut_by_operation_timeout(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """The issue's case: read_timeout=2, operation_timeout=3, max_attempts=1, a small turn
    object whose body arrives one byte every 0.1 s (never stalling 2 s, so botocore's read
    timeout never fires). Unbounded, the read succeeds after tens of seconds."""
    async with store_via(s3_server.endpoint_url, s3_server, bucket) as writer:
        await finish(writer, "t", 1, events=1)
    proxy.trickle_seconds = 0.1
    proxy.plan_next(FaultKind.TRICKLE, EVERY, match="GetObject")
    async with store_via(
        proxy.endpoint_url,
        s3_server,
        bucket,
        read_timeout=2,
        operation_timeout=3,
        max_attempts=1,
        check_endpoint=False,
    ) as reader:
        for read in (reader.get_turn("t", 1), reader.get_turns("t"), reader.get_events("t")):
            with pytest.raises(StorageUnavailableError, match="operation_timeout=3s"):
                await read
    assert proxy.stats().faults["trickle"] == 3


async def test_each_retry_is_logged_at_info_with_its_cause(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3_eventstore")
    proxy.plan_next(FaultKind.INTERNAL_ERROR, 2, match="PutObject")
    async with store_via(
        proxy.endpoint_url, s3_server, bucket, max_attempts=3, check_endpoint=False
    ) as store:
        await finish(store, "t", 1)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert [r.levelno for r in retries] == [logging.INFO, logging.INFO]
    assert all("PutObject" in r.getMessage() for r in retries)
    assert all("InternalError" in r.getMessage() for r in retries)
    assert "attempt 2 of 3" in retries[0].getMessage()
    assert "attempt 3 of 3" in retries[1].getMessage()


async def test_an_unreachable_endpoint_logs_every_retry(
    s3_server: EmbeddedS3Server, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.INFO, logger="s3_eventstore")
    async with S3EventStore(
        "nowhere",
        endpoint_url=f"http://127.0.0.1:{port}",
        session=s3_server.session(),
        max_attempts=3,
        connect_timeout=1,
    ) as store:
        with pytest.raises(StorageUnavailableError):
            await store.get_turns("t")
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert all("ListObjectsV2" in message for message in retries)
    assert all("connect" in message.lower() for message in retries)


# --- 8. every non-AWS endpoint is probed, loopback included ---------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_stores_refuse_a_loopback_server_that_ignores_if_none_match(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, host: str
) -> None:
    """The issue's case: two stores finish the same turn through a server that ignores
    If-None-Match, with default settings. Both refuse before writing anything."""
    forget_probes()  # a port the OS reuses must not inherit an earlier proxy's result
    proxy.plan_next(FaultKind.STRIP_CONDITIONS, EVERY)
    endpoint = proxy.endpoint_url.replace("127.0.0.1", host)
    async with (
        store_via(endpoint, s3_server, bucket, check_endpoint=None) as first,
        store_via(endpoint, s3_server, bucket, check_endpoint=None) as second,
    ):
        for store in (first, second):
            await store.append("t", 5, make_event(0))
            with pytest.raises(UnsafeEndpointError, match="If-None-Match"):
                await store.finish_turn("t", 5)
            assert len(store.open_turns()) == 1  # still open: nothing lost, nothing written
            # close() would persist the open turn and be refused the same way: discard it.
            await store.discard_turn("t", 5)
        assert first.endpoint_probe is not None
        assert not first.endpoint_probe.honoured
    assert all_keys(backdoor, bucket) == []
    # One probe for the endpoint in this process (two PUTs, one DELETE), shared by both.
    assert proxy.stats().requests == {"PutObject": 2, "DeleteObject": 1}


async def test_one_probe_per_endpoint_per_process(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    forget_probes()
    async with store_via(proxy.endpoint_url, s3_server, bucket, check_endpoint=None) as first:
        await finish(first, "a", 1)
    async with store_via(proxy.endpoint_url, s3_server, bucket, check_endpoint=None) as second:
        events = await finish(second, "b", 1)
        assert second.endpoint_probe is not None
        assert second.endpoint_probe.honoured
    # Probe, once: If-None-Match twice, If-Match (HEAD, a wrong ETag, the right one, on the
    # deleted key) and two DELETEs (5 PUTs); then one PUT per turn.
    assert proxy.stats().requests == {"PutObject": 7, "HeadObject": 1, "DeleteObject": 2}
    key = second.layout.turn_key("b", 1)
    assert read_behind(backdoor, bucket, key) == events
    assert sorted(all_keys(backdoor, bucket)) == sorted([first.layout.turn_key("a", 1), key])


async def test_the_probe_writes_only_under_the_prefix_doctor_folder(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """Every key the conditional-write probe touches
    lies under ``{prefix}_doctor/``, the one folder outside threads/ the store writes, and
    nothing of it remains afterwards."""
    forget_probes()
    touched: list[tuple[str, str]] = []

    def record(model: Any = None, params: Any = None, **_: Any) -> None:
        if params and "Key" in params:
            touched.append((model.name, params["Key"]))

    async with store_via(s3_server.endpoint_url, s3_server, bucket, check_endpoint=None) as s:
        s.client.meta.events.register("before-parameter-build.s3", record)
        await finish(s, "t", 1)
        turn_key = s.layout.turn_key("t", 1)
    probe_keys = {key for _, key in touched if key != turn_key}
    assert probe_keys, touched
    assert all(key.startswith(f"{PREFIX.rstrip('/')}/_doctor/") for key in probe_keys), touched
    assert {op for op, key in touched if key != turn_key} >= {"PutObject", "DeleteObject"}
    assert all_keys(backdoor, bucket) == [turn_key]


async def test_allow_unsafe_endpoint_is_the_way_out(
    proxy: FaultProxy,
    s3_server: EmbeddedS3Server,
    bucket: str,
    backdoor: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    forget_probes()
    proxy.plan_next(FaultKind.STRIP_CONDITIONS, EVERY)
    async with store_via(
        proxy.endpoint_url, s3_server, bucket, check_endpoint=None, allow_unsafe_endpoint=True
    ) as s:
        events = await finish(s, "t", 1)
    assert read_behind(backdoor, bucket, s.layout.turn_key("t", 1)) == events
    assert any("ignores If-None-Match" in r.getMessage() for r in caplog.records)


def test_which_endpoints_are_probed_by_default() -> None:
    def wanted(endpoint: str | None, **options: Any) -> bool:
        return S3EventStore("b-1", endpoint_url=endpoint, **options).probe_wanted

    assert not wanted(None)  # AWS
    assert not wanted("https://s3.eu-west-1.amazonaws.com")
    assert not wanted("https://bucket.s3.amazonaws.com.cn")
    for endpoint in (
        "http://127.0.0.1:9000",
        "http://localhost:9000",
        "http://[::1]:9000",
        "http://minio.internal:9000",
        "https://account.r2.cloudflarestorage.com",
        "https://amazonaws.com.evil.example",
    ):
        assert wanted(endpoint), endpoint
        assert not wanted(endpoint, check_endpoint=False)
    assert wanted(None, check_endpoint=True)


# --- 9. servers that reject checksum headers -----------------------------------------------


def carries_checksum(info: RequestInfo) -> bool:
    """Any request carrying an x-amz-checksum-* header (what such servers refuse, on
    every operation: DeleteObjects too, where botocore always adds one)."""
    return any(
        name.lower().startswith("x-amz-checksum") or name.lower() == "x-amz-sdk-checksum-algorithm"
        for name, _ in info.headers
    )


async def test_checksum_headers_can_be_turned_off(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    async with store_via(proxy.endpoint_url, s3_server, bucket, check_endpoint=False) as strict:
        await strict.append("t", 1, make_event(0))
        with pytest.raises(StorageError, match="InvalidRequest") as refused:
            await strict.finish_turn("t", 1)
        assert "checksum_headers=False" in str(refused.value)  # the way out, named
        assert len(strict.open_turns()) == 1  # kept open, nothing lost
        await strict.discard_turn("t", 1)  # close() would persist it and be refused the same way
    async with store_via(proxy.endpoint_url, s3_server, bucket, checksum_headers=False) as relaxed:
        events = await finish(relaxed, "t", 2)
        assert (await relaxed.get_turn("t", 2)).events == tuple(events)  # type: ignore[union-attr]
    assert read_behind(backdoor, bucket, relaxed.layout.turn_key("t", 2)) == events


async def test_clear_and_compact_without_checksum_headers(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """DeleteObjects requires a checksum: botocore adds CRC32 whatever the settings, so a
    store with checksum_headers=False sends Content-MD5 instead (clear, purge, compaction's
    clean-up) and never a flexible-checksum header."""
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    async with store_via(proxy.endpoint_url, s3_server, bucket, checksum_headers=False) as store:
        for turn in range(1, 4):
            await finish(store, "t", turn)
        await store.compact("t")
        assert len(await store.get_events("t")) == 6
        await store.clear("t")
        assert await store.get_turns("t") == []
    assert not [key for key in all_keys(backdoor, bucket) if "/thread=t/" in key]
    stats = proxy.stats()
    assert stats.requests.get("DeleteObjects", 0) >= 1
    assert stats.faults.get("bad_request", 0) == 0  # no request carried a checksum header


async def test_strict_clear_is_refused_by_such_a_server(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """The control: with checksum headers on, the DeleteObjects of clear carries
    botocore's CRC32 and the server refuses it (typed, and the turns are still there)."""
    async with store_via(s3_server.endpoint_url, s3_server, bucket) as writer:
        await finish(writer, "t", 1)
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    async with store_via(proxy.endpoint_url, s3_server, bucket, check_endpoint=False) as strict:
        with pytest.raises(StorageError, match="InvalidRequest"):
            await strict.clear("t")
        assert len(await strict.get_turns("t")) == 1


async def test_streamed_turns_without_checksum_headers(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    async with store_via(
        proxy.endpoint_url,
        s3_server,
        bucket,
        checksum_headers=False,
        max_turn_buffer_bytes=4096,
    ) as store:
        events = await finish(store, "t", 1, events=100)
        assert (await store.get_turn("t", 1)).events == tuple(events)  # type: ignore[union-attr]
    assert proxy.stats().requests.get("UploadPart", 0) >= 1


async def test_from_url_takes_the_checksum_option() -> None:
    store = S3EventStore.from_url("s3://b-1/p", checksum_headers=False)
    assert store.config.client.checksum_headers is False
    assert S3EventStore("b-1").config.client.checksum_headers is True


async def test_doctor_recommends_turning_checksum_headers_off(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    report = await run_doctor(proxy.endpoint_url, bucket, PREFIX, session=s3_server.session())
    check = report.check("checksum_sha256")
    assert not check.ok
    assert "checksum_headers=False" in check.detail
    assert "--no-checksum-headers" in check.detail
    assert "checksum_headers=False" in report.format()


async def test_doctor_checks_the_endpoint_as_a_store_without_checksum_headers(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """Following the doctor's own advice gives a clean report: with checksum_headers=False
    nothing carries a checksum header (delete_objects included) and the checksum checks
    say they are not used."""
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    report = await run_doctor(
        proxy.endpoint_url, bucket, PREFIX, session=s3_server.session(), checksum_headers=False
    )
    assert report.ok, report.format()
    assert report.check("delete_objects").ok
    assert "not used" in report.check("checksum_sha256").detail
    assert proxy.stats().faults.get("bad_request", 0) == 0


def test_cli_no_checksum_headers_writes_to_such_a_server(
    proxy: FaultProxy, cli_env: None, archive: Archive
) -> None:
    """``compact`` writes a segment: refused with checksum headers, done without them."""
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    thread = next(t for t, turns in archive.turns.items() if len(turns) >= 2)
    via_proxy = replace(archive, endpoint_url=proxy.endpoint_url)
    refused = invoke(via_proxy, "compact", thread)
    assert refused.exit_code == ExitCode.STORAGE, refused.output
    assert "InvalidRequest" in refused.stderr
    done = invoke(via_proxy, "compact", thread, "--no-checksum-headers", "--json")
    assert done.exit_code == 0, done.output
    (report,) = json.loads(done.stdout)["threads"]
    assert report["turns_compacted"] == len(archive.turns[thread])
    cat = invoke(archive, "cat", thread)
    assert cat.stdout_bytes == archive.payload(thread)


def test_cli_doctor_and_clear_follow_no_checksum_headers(
    proxy: FaultProxy, cli_env: None, archive: Archive
) -> None:
    """The doctor's advice, followed on the command line: ``doctor`` fails (exit 5) with
    checksum headers and passes without; ``clear`` likewise deletes the thread."""
    proxy.plan_next(FaultKind.BAD_REQUEST, EVERY, match=carries_checksum)
    via_proxy = replace(archive, endpoint_url=proxy.endpoint_url)
    strict = invoke(via_proxy, "doctor")
    assert strict.exit_code == ExitCode.STORAGE, strict.output
    relaxed = invoke(via_proxy, "doctor", "--no-checksum-headers")
    assert relaxed.exit_code == 0, relaxed.output
    thread = next(iter(archive.turns))
    cleared = invoke(via_proxy, "clear", thread, "--yes", "--no-checksum-headers")
    assert cleared.exit_code == 0, cleared.output
    assert invoke(archive, "cat", thread).exit_code == ExitCode.NOT_FOUND


def test_cli_shows_each_retry_on_stderr(proxy: FaultProxy, cli_env: None, archive: Archive) -> None:
    proxy.plan_next(FaultKind.SLOW_DOWN, 2, match="ListObjectsV2")
    thread = next(iter(archive.turns))
    result = invoke(replace(archive, endpoint_url=proxy.endpoint_url), "cat", thread)
    assert result.exit_code == 0, result.output
    retries = [line for line in result.stderr.splitlines() if "retrying ListObjectsV2" in line]
    assert len(retries) == 2
    assert all("SlowDown" in line for line in retries)


async def test_doctor_bounds_each_check_bodies_included(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    """Item 7 for the doctor: its ranged GET's body trickles (one byte every 0.2 s, never
    stalling long enough for botocore's read timeout): the check fails with the bound
    named, the other checks still run, and nothing is left under _doctor/."""
    proxy.trickle_seconds = 0.2
    proxy.plan_next(FaultKind.TRICKLE, EVERY, match="GetObject")
    report = await run_doctor(
        proxy.endpoint_url, bucket, PREFIX, session=s3_server.session(), check_seconds=2
    )
    ranged = report.check("ranged_get")
    assert not ranged.ok
    assert "within 2 s" in ranged.detail
    assert report.check("conditional_put").ok
    assert report.check("delete_objects").ok
    assert report.cleaned_up
    assert all_keys(backdoor, bucket) == []
