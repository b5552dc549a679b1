"""The README's quickstart runs as written (pointed at the test server instead of AWS)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from s3_eventstore import S3EventStore
from tests.doctor_table import TITLES, column, doctor_json, parse_readme_table
from tests.s3rver_fixture import S3RVER_CREDENTIALS, s3rver  # noqa: F401 - the fixture

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert first_block is not None
    commands = first_block.group(1).strip().splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("s3-eventstore demo")
    assert commands[1].endswith("python -m pytest -n auto")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "\n.venv/bin/python -m pytest -n auto\n" in ci  # CI runs the same command


def test_quickstart_runs(
    s3_server: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert code is not None
    original = S3EventStore.from_url

    def local(url: str, **options: Any) -> S3EventStore:
        assert url == "s3://my-archive/agents/prod"
        return original(
            f"s3://{bucket}/agents/prod",
            endpoint_url=s3_server.endpoint_url,
            session=s3_server.session(),
            **options,
        )

    monkeypatch.setattr(S3EventStore, "from_url", staticmethod(local))
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    assert capsys.readouterr().out.splitlines() == ["1 True ['start', 'text_delta']", "2"]


@pytest.mark.parametrize("name", ["moto", "seaweedfs", "radosgw", "s3rver"])
def test_the_servers_table_is_what_doctor_says(name: str, request: pytest.FixtureRequest) -> None:
    """README's table of S3 implementations: each server's column is what
    ``s3-eventstore doctor --json`` reports on that server now (radosgw: opt-in)."""
    from s3_eventstore.demo.embedded import CREDENTIALS

    server = request.getfixturevalue("s3rver" if name == "s3rver" else f"{name}_server")
    credentials = S3RVER_CREDENTIALS if name == "s3rver" else CREDENTIALS
    report = doctor_json(server.endpoint_url, dict(credentials), f"readme-{name}")
    readme = parse_readme_table(README.read_text(encoding="utf-8"))
    assert readme[TITLES[name]] == column(report)
