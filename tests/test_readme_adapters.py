"""The README's framework examples run as written: the store pointed at the test server, and
the framework's default (networked) model swapped for its scripted one."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import S3EventStore

if TYPE_CHECKING:
    from s3_eventstore.demo.embedded import EmbeddedS3Server

README = Path(__file__).resolve().parent.parent / "README.md"


def examples() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Framework adapters", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    by_framework = {}
    for block in blocks:
        for name in ("agents", "strands", "pydantic_ai"):
            if f"from {name} import" in block:
                by_framework[name] = block
    assert set(by_framework) == {"agents", "strands", "pydantic_ai"}
    for block in blocks:
        assert len(block.strip().splitlines()) <= 12  # "a ten-line example"
    return by_framework


@pytest.fixture
def local_store(
    s3_server: EmbeddedS3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> list[S3EventStore]:
    made: list[S3EventStore] = []
    original = S3EventStore.from_url

    def local(url: str, **options: Any) -> S3EventStore:
        assert url == "s3://my-archive/agents/prod"
        store = original(
            f"s3://{bucket}/agents/prod",
            endpoint_url=s3_server.endpoint_url,
            session=s3_server.session(),
            **options,
        )
        made.append(store)
        return store

    monkeypatch.setattr(S3EventStore, "from_url", staticmethod(local))
    return made


def run_block(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace


def test_openai_agents_example(
    local_store: list[S3EventStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("agents")
    import agents
    from agents.testing import ScriptedModel, assistant_message

    agents.set_tracing_disabled(True)
    model = ScriptedModel([[assistant_message("Four.")], [assistant_message("Still four.")]])
    monkeypatch.setattr(agents, "Agent", functools.partial(agents.Agent, model=model))
    chat = run_block(examples()["agents"])["chat"]
    assert asyncio.run(chat("2+2?")) == "Four."
    assert asyncio.run(chat("And now?")) == "Still four."
    assert len(model.calls[-1].input) == 3  # the archive supplied the history


def test_strands_example(local_store: list[S3EventStore], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("strands")
    import strands

    from tests.test_adapter_strands import ScriptedModel

    model = ScriptedModel([{"text": "Day 1: Alfama."}, {"text": "Day 3: Sintra."}])
    monkeypatch.setattr(
        strands, "Agent", functools.partial(strands.Agent, model=model, callback_handler=None)
    )
    run_block(examples()["strands"])
    (store,) = local_store
    assert store.client is None  # closed by manager.close()
    assert len(model.seen[1]) == 3  # the second invocation saw the first one


def test_pydantic_ai_example(local_store: list[S3EventStore]) -> None:
    pytest.importorskip("pydantic_ai")
    chat = run_block(examples()["pydantic_ai"])["chat"]
    first = asyncio.run(chat("hello"))
    assert isinstance(first, str)
    asyncio.run(chat("again"))

    async def count() -> int:
        async with S3EventStore.from_url("s3://my-archive/agents/prod") as store:
            from s3_eventstore.adapters.pydantic_ai import load_history

            return len(await load_history(store, "conversation-42"))

    assert asyncio.run(count()) == 4
