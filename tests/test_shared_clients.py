"""Stores of equal configuration share one client (one parsed S3 model, one connection
pool) per event loop; requests stay counted per store; the last close closes it.

Counts of clients and requests only: what sharing saves in CPU is measured by
``python -m benchmarks --only store_open``, never asserted here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import AgentEventEnvelope, S3EventStore
from s3_eventstore.demo.embedded import CREDENTIALS
from s3_eventstore.errors import ConfigurationError
from s3_eventstore.s3 import pool

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores built without a session read credentials from the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", CREDENTIALS["region_name"])
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def new_store(server: EmbeddedS3Server, bucket: str, prefix: str, **options: Any) -> S3EventStore:
    return S3EventStore(bucket, prefix, endpoint_url=server.endpoint_url, **options)


async def write_one_turn(store: S3EventStore, thread: str = "t1") -> None:
    await store.append(thread, 1, AgentEventEnvelope.create("start", {}, sequence=0))
    await store.finish_turn(thread, 1)


def http_session_closed(client: Any) -> bool:
    """Whether an aiobotocore client's aiohttp sessions are all closed."""
    sessions = client._endpoint.http_session._sessions  # test-only peek at aiobotocore
    return all(session.closed for session in sessions.values())


async def test_stores_of_equal_settings_share_one_client_and_count_their_own_requests(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    before = pool.active_clients()
    stores = [new_store(s3_server, bucket, f"p{i}") for i in range(3)]
    for store in stores:
        await store.open()
    assert len({id(store.client) for store in stores}) == 1
    assert pool.active_clients() == before + 1
    await write_one_turn(stores[0])
    await write_one_turn(stores[1])
    await stores[1].get_turns("t1")
    assert stores[0].requests.snapshot() == {"PutObject": 1}
    assert stores[1].requests.snapshot() == {"GetObject": 1, "ListObjectsV2": 1, "PutObject": 1}
    assert stores[2].requests.snapshot() == {}
    client = stores[0].client
    for store in stores[:2]:
        await store.close()
    assert not http_session_closed(client)  # one store still holds it
    await write_one_turn(stores[2])  # and it still works
    await stores[2].close()
    await stores[2].close()  # closing twice is harmless
    assert http_session_closed(client)
    assert pool.active_clients() == before


async def test_a_store_opened_after_the_last_close_gets_a_new_client(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with new_store(s3_server, bucket, "a") as first:
        old = first.client
    async with new_store(s3_server, bucket, "b") as second:
        assert second.client is not old
        await write_one_turn(second)
    assert http_session_closed(old)


async def test_other_settings_a_session_or_share_client_false_get_their_own_client(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    async with (
        new_store(s3_server, bucket, "a") as shared,
        new_store(s3_server, bucket, "b") as same,
        new_store(s3_server, bucket, "c", max_attempts=2) as other_settings,
        new_store(s3_server, bucket, "d", share_client=False) as unshared,
        new_store(s3_server, bucket, "e", session=s3_server.session()) as with_session,
    ):
        assert same.client is shared.client
        others = (other_settings, unshared, with_session)
        assert len({id(shared.client), *(id(s.client) for s in others)}) == 4
        for store in (shared, *others):
            await write_one_turn(store)
            assert store.requests.snapshot() == {"PutObject": 1}
        own = unshared.client
    assert http_session_closed(own)


async def test_another_aws_environment_gets_another_client(
    s3_server: EmbeddedS3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with new_store(s3_server, bucket, "a") as first:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "another-key")
        async with new_store(s3_server, bucket, "b") as second:
            assert second.client is not first.client


def test_each_event_loop_has_its_own_client_and_a_closed_loop_is_never_reused(
    s3_server: EmbeddedS3Server, bucket: str
) -> None:
    clients: list[Any] = []

    async def leave_open(prefix: str) -> None:
        store = new_store(s3_server, bucket, prefix)
        await write_one_turn(store)
        clients.append(store.client)  # never closed: its loop ends under it

    before = pool.active_clients()
    asyncio.run(leave_open("x"))
    assert pool.active_clients() == before  # its loop is closed: forgotten
    asyncio.run(leave_open("y"))
    assert clients[0] is not clients[1]
    for client in clients:  # what the abandoned stores left open, closed by hand
        asyncio.run(client.__aexit__(None, None, None))


@pytest.mark.parametrize("bad", [None, 1, "yes"])
def test_share_client_must_be_a_bool(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="share_client"):
        S3EventStore("bucket", share_client=bad)
