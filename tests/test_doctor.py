"""The doctor against two independent servers (moto and s3rver), and the store's refusal
to write to an endpoint that ignores ``If-None-Match``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore, UnsafeEndpointError
from s3_eventstore.ops.doctor import run_doctor
from s3_eventstore.s3.probe import forget_probes
from tests.conftest import all_keys, client_for
from tests.s3rver_fixture import s3rver  # noqa: F401 - the fixture

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server
    from tests.s3rver_fixture import S3rver

CHECKS = [
    "conditional_put",
    "checksum_sha256",
    "wrong_checksum_rejected",
    "listing_complete",
    "metadata_round_trip",
    "ranged_get",
    "conditional_multipart_complete",
    "delete_objects",
]
ADVISORY = {"wrong_checksum_rejected", "conditional_multipart_complete"}
"""What the store only uses when present: a missing one does not fail the doctor."""

# What each server answers (moto 5.2, SeaweedFS 4.48, Ceph radosgw 16.2); only the
# checks that fail are listed. README's table is these, produced by `doctor --json`.
FAILING = {
    # moto stores a PUT whose x-amz-checksum-sha256 is wrong (AWS answers BadDigest).
    "moto": {"wrong_checksum_rejected"},
    "seaweedfs": set(),
    # radosgw stores wrong checksums and completes a multipart upload over an existing
    # key despite If-None-Match (it honours the header on PutObject).
    "radosgw": {"wrong_checksum_rejected", "conditional_multipart_complete"},
}


def event(sequence: int = 0) -> AgentEventEnvelope:
    return AgentEventEnvelope.create(
        "message",
        {"text": "hi"},
        sequence=sequence,
        event_id=f"00000000-0000-4000-8000-{sequence:012d}",
        timestamp="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def s3rver_bucket(s3rver: S3rver, request: pytest.FixtureRequest) -> str:  # noqa: F811
    name = f"doctor-{abs(hash(request.node.name)) % 10**8}"
    s3rver.client().create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("name", list(FAILING))
async def test_doctor_on(name: str, request: pytest.FixtureRequest) -> None:
    """Only what the store requires decides ``ok``; advisories are reported."""
    server = request.getfixturevalue(f"{name}_server")
    backdoor = client_for(server)
    bucket = f"doctor-{name}"
    backdoor.create_bucket(Bucket=bucket)
    report = await run_doctor(server.endpoint_url, bucket, "archive/v1", server.session())
    print(report.format())
    assert [check.name for check in report.checks] == CHECKS
    assert {c.name for c in report.checks if not c.required} == ADVISORY
    assert {c.name for c in report.checks if not c.ok} == FAILING[name]
    assert report.ok
    assert report.to_dict()["ok"] is True
    assert report.missing == ()
    assert set(report.advisories) == FAILING[name]
    assert report.check("conditional_put").detail == "second PUT with If-None-Match: * got 412"
    assert report.check("listing_complete").detail == ("7 keys, each once, across pages of 2 keys")
    assert report.folder.startswith("archive/v1/_doctor/")
    assert report.cleaned_up
    assert all_keys(backdoor, bucket) == []
    assert backdoor.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_moto_stores_a_wrong_checksum_and_doctor_calls_it_an_advisory() -> None:
    """The detail a user reads for moto's (and radosgw's) checksum behaviour."""
    from s3_eventstore.ops.doctor import Check, DoctorReport

    check = Check("wrong_checksum_rejected", False, "stored", required=False)
    report = DoctorReport(None, "b", "f/", (check,), True)
    assert report.ok
    assert report.advisories == ("wrong_checksum_rejected",)
    assert report.format().splitlines()[0] == "no   wrong_checksum_rejected (advisory): stored"


async def test_doctor_on_s3rver_reports_ignored_conditions(
    s3rver: S3rver,  # noqa: F811
    s3rver_bucket: str,
) -> None:
    report = await run_doctor(s3rver.endpoint_url, s3rver_bucket, "p", s3rver.session())
    print(report.format())
    assert [check.name for check in report.checks] == CHECKS
    # What s3rver 3 answers: it ignores If-None-Match (PUT and multipart completion),
    # stores wrong checksums, and loses keys between LIST pages (with Node's legacy
    # OpenSSL provider; without it a truncated LIST answers 500). Explicit ranges, the
    # only ones the store sends, are right (suffix ranges are not: not checked).
    assert {check.name: check.ok for check in report.checks} == {
        "conditional_put": False,
        "checksum_sha256": True,
        "wrong_checksum_rejected": False,
        "listing_complete": False,
        "metadata_round_trip": True,
        "ranged_get": True,
        "conditional_multipart_complete": False,
        "delete_objects": True,
    }
    assert report.missing == ("conditional_put", "listing_complete")
    assert report.check("listing_complete").detail.endswith(
        "lost ['a', 'a-b', '\U0001f600'], repeated []"
    )
    assert report.check("conditional_put").detail == (
        "second PUT with If-None-Match: * succeeded: header ignored"
    )
    assert not report.ok
    assert report.cleaned_up
    assert s3rver.client().list_objects_v2(Bucket=s3rver_bucket).get("KeyCount", 0) == 0


async def test_store_refuses_an_endpoint_that_ignores_if_none_match(
    s3rver: S3rver,  # noqa: F811
    s3rver_bucket: str,
) -> None:
    forget_probes()  # this test counts the probe's requests
    # s3rver listens on loopback: probed by default (no check_endpoint needed).
    async with S3EventStore(
        s3rver_bucket,
        "p",
        endpoint_url=s3rver.endpoint_url,
        session=s3rver.session(),
    ) as store:
        await store.append("t", 1, event())
        with pytest.raises(
            UnsafeEndpointError, match=r"does not honour conditional writes"
        ) as info:
            await store.finish_turn("t", 1)
        assert info.value.code == "IfNoneMatchIgnored"
        assert "allow_unsafe_endpoint=True" in str(info.value)
        assert store.endpoint_probe is not None
        assert store.endpoint_probe.honoured is False
        assert store.endpoint_probe.requests == {"PutObject": 2, "DeleteObject": 1}
        # Nothing lost: the turn is still open with its event, and nothing was written.
        assert [(i.turn, i.events) for i in store.open_turns()] == [(1, 1)]
        assert s3rver.client().list_objects_v2(Bucket=s3rver_bucket).get("KeyCount", 0) == 0
        # The probe ran once: the refusal is cached.
        with pytest.raises(UnsafeEndpointError):
            await store.finish_turn("t", 1)
        assert store.requests.calls["PutObject"] == 2
        with pytest.raises(UnsafeEndpointError):
            await store.flush()  # suspending is a conditional write too
        await store.discard_turn("t", 1)  # so that leaving the block has nothing to persist


async def test_store_writes_to_an_unsafe_endpoint_when_told_to(
    s3rver: S3rver,  # noqa: F811
    s3rver_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with S3EventStore(
        s3rver_bucket,
        "p",
        endpoint_url=s3rver.endpoint_url,
        session=s3rver.session(),
        check_endpoint=True,
        allow_unsafe_endpoint=True,
    ) as store:
        await store.append("t", 1, event())
        with caplog.at_level(logging.WARNING, logger="s3_eventstore"):
            await store.finish_turn("t", 1)
        assert "ignores If-None-Match" in caplog.text
        turn = await store.get_turn("t", 1)
        assert turn is not None
        assert turn.events == (event(),)


async def test_the_check_runs_once_before_the_first_write_and_is_counted(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any
) -> None:
    forget_probes()  # moto was probed at session start: probe it again, and count
    async with S3EventStore(
        bucket,
        "archive/v1",
        endpoint_url=s3_server.endpoint_url,
        session=s3_server.session(),
        check_endpoint=True,
    ) as store:
        for turn in (1, 2):
            await store.append("t", turn, event())
            await store.finish_turn("t", turn)
        assert store.endpoint_probe is not None
        assert store.endpoint_probe.honoured
        assert store.endpoint_probe.requests == {
            "PutObject": 5,
            "HeadObject": 1,
            "DeleteObject": 2,
        }, "If-None-Match twice, If-Match wrong, right, and on the deleted key"
        # Probe requests are real requests: the store's counter has them too.
        assert store.requests.calls["PutObject"] == 5 + 2
        assert store.requests.calls["DeleteObject"] == 2
    # The probe cleaned up after itself: only the two turns remain.
    assert sorted(all_keys(backdoor, bucket)) == [
        store.layout.turn_key("t", 1),
        store.layout.turn_key("t", 2),
    ]


@pytest.mark.parametrize(
    ("endpoint_url", "check_endpoint", "probes"),
    [
        (None, None, False),
        ("https://s3.eu-west-1.amazonaws.com", None, False),
        ("http://127.0.0.1:9000", None, True),
        ("http://localhost:9000", None, True),
        ("http://[::1]:9000", None, True),
        ("https://amazonaws.com.evil.example", None, True),
        ("http://127.0.0.1:9000", False, False),
        ("https://minio.example.internal", None, True),
        ("https://minio.example.internal", False, False),
        (None, True, True),
    ],
)
def test_which_endpoints_are_checked_automatically(
    endpoint_url: str | None, check_endpoint: bool | None, probes: bool
) -> None:
    store = S3EventStore("b-1", endpoint_url=endpoint_url, check_endpoint=check_endpoint)
    assert store._wants_probe() is probes
