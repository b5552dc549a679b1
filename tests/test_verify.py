"""S3EventStore.verify: every object downloaded and checked; bad objects reported, never
raised; only storage failures raise."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import InvalidThreadIdError, S3EventStore, StorageUnavailableError
from s3_eventstore.s3.verify import VerifyProblem, VerifyReport
from s3_eventstore.testing.conformance import make_event
from s3_eventstore.testing.faultproxy import FaultKind, FaultProxy
from tests.faults_fixtures import running_proxy, store_via
from tests.test_corruption import CASES, encoded_turn, plant

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3_eventstore.demo.embedded import EmbeddedS3Server


@pytest.fixture
def proxy(s3_server: EmbeddedS3Server) -> Iterator[FaultProxy]:
    with running_proxy(s3_server) as fault_proxy:
        yield fault_proxy


def _sizes(backdoor: Any, bucket: str, prefix: str) -> int:
    pages = backdoor.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(obj["Size"] for page in pages for obj in page.get("Contents", []))


async def _fill(store: S3EventStore, threads: dict[str, int]) -> int:
    """Finish ``turns`` turns of 0..2 events in each thread; returns the event count."""
    events = 0
    for thread, turns in threads.items():
        for turn in range(turns):
            for n in range(turn % 3):
                await store.append(thread, turn, make_event(n))
                events += 1
            await store.finish_turn(thread, turn)
    return events


async def test_clean_store(s3_store: S3EventStore, backdoor: Any, bucket: str) -> None:
    events = await _fill(s3_store, {"a": 4, "b/..": 3, "会话": 2})
    report = await s3_store.verify()
    assert report == VerifyReport(
        scope="archive/v1/threads/",
        objects_checked=9,
        ok=9,
        events=events,
        bytes_read=_sizes(backdoor, bucket, "archive/v1/"),
    )
    assert report.clean
    one = await s3_store.verify("b/..")
    assert (one.scope, one.objects_checked, one.ok, one.events) == (
        s3_store.layout.thread_folder("b/.."),
        3,
        3,
        0 + 1 + 2,
    )


async def test_empty_store_and_unknown_thread(s3_store: S3EventStore) -> None:
    assert (await s3_store.verify()).objects_checked == 0
    assert (await s3_store.verify("nobody")).clean


async def test_damaged_store_is_reported_in_full(
    s3_store: S3EventStore, backdoor: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _fill(s3_store, {"good": 3, "bad": 2})
    planted: dict[str, tuple[str, str]] = {}  # key -> (error type, case)
    for turn, (case, (damage, error, _, _)) in enumerate(CASES.items(), start=10):
        key = s3_store.layout.turn_key("bad", turn)
        plant(backdoor, bucket, key, *damage(encoded_turn("bad", turn)))
        planted[key] = (error.__name__, case)
    folder = s3_store.layout.thread_folder("bad")
    foreign = [f"{folder}README", "archive/v1/threads/stray.bin"]
    for key in foreign:
        plant(backdoor, bucket, key, b"?", None)
    caplog.set_level(logging.WARNING, logger="s3_eventstore")

    report = await s3_store.verify()

    assert report.objects_checked == 5 + len(CASES)
    assert report.ok == 5
    assert not report.clean
    assert [problem.key for problem in report.problems] == sorted(planted)
    for problem in report.problems:
        assert isinstance(problem, VerifyProblem)
        assert problem.error == planted[problem.key][0], planted[problem.key][1]
        assert problem.message.startswith(f"{problem.key}: ")
    assert sorted(report.foreign) == sorted(foreign)
    logged = [r.getMessage() for r in caplog.records if r.name == "s3_eventstore"]
    for key in foreign:
        assert f"verify: skipping {key}: not a turn object of this store" in logged
    assert report.bytes_read == _sizes(backdoor, bucket, "archive/v1/") - 2  # foreign: 1 B each

    good = await s3_store.verify("good")
    assert (good.objects_checked, good.ok, good.problems) == (3, 3, ())
    bad = await s3_store.verify("bad")
    assert (bad.objects_checked, len(bad.problems), bad.foreign) == (
        2 + len(CASES),
        len(CASES),
        (f"{folder}README",),
    )


async def test_listing_is_paginated(
    s3_store: S3EventStore, backdoor: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages are followed (S3 returns at most 1000 keys; a page of 2 exercises the loop)."""
    monkeypatch.setattr("s3_eventstore.s3.bucket.LIST_PAGE_LIMIT", 2)
    await _fill(s3_store, {"a": 3})
    for n in range(4):  # cheap to list, never downloaded
        plant(backdoor, bucket, f"archive/v1/threads/junk/{n:04d}", b"", None)
    s3_store.requests.reset()
    report = await s3_store.verify()
    assert (report.objects_checked, report.ok, len(report.foreign)) == (3, 3, 4)
    assert s3_store.requests.calls["ListObjectsV2"] == 4


async def test_storage_failures_raise(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with store_via(proxy.endpoint_url, s3_server, bucket, max_attempts=1) as store:
        await _fill(store, {"a": 2})
        proxy.plan_next(FaultKind.INTERNAL_ERROR, count=8, match="GetObject")
        with pytest.raises(
            StorageUnavailableError, match=r"^GetObject archive/v1/\S+ failed: InternalError"
        ):
            await store.verify()
        proxy.clear_plans()
        proxy.plan_next(FaultKind.SLOW_DOWN, count=8, match="ListObjectsV2")
        with pytest.raises(StorageUnavailableError, match=r"^ListObjectsV2 archive/v1/threads/ "):
            await store.verify()
        proxy.clear_plans()
        assert (await store.verify()).ok == 2


async def test_bounded_concurrency(
    proxy: FaultProxy, s3_server: EmbeddedS3Server, bucket: str
) -> None:
    """With read_concurrency=2, a third GET is not sent while two are held."""
    async with store_via(proxy.endpoint_url, s3_server, bucket, read_concurrency=2) as store:
        await _fill(store, {"a": 5})
        gates = [proxy.hold_next(match="GetObject") for _ in range(2)]
        verifying = asyncio.create_task(store.verify())
        for gate in gates:
            await gate.wait_arrived()
        third = proxy.hold_next(match="GetObject")
        assert proxy.stats().requests.get("GetObject") == 2
        assert not third.arrived.is_set()
        gates[0].release()
        await third.wait_arrived()  # one slot freed, one more GET
        third.release()
        gates[1].release()
        report = await verifying
        assert (report.objects_checked, report.ok) == (5, 5)


async def test_invalid_thread_id(s3_store: S3EventStore) -> None:
    with pytest.raises(InvalidThreadIdError, match=r"^thread id must not be empty$"):
        await s3_store.verify("")
