"""What a fresh clone and a user's install get: the vectors, the licence, a whole sdist,
and a conformance kit that imports without pytest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from s3_eventstore.testing import load_agent_sdk_vectors
from s3_eventstore.testing.vectors import VECTOR_FILES, AgentSdkVectors

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "agent-sdk"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_SDK_FIXTURES", "PYTHONPATH")}
    env.update(extra)
    return env


def copy_checkout(destination: Path) -> Path:
    """The files a clone has (tracked and new, not ignored), copied without ../shared."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_the_vectors_live_in_the_repository() -> None:
    vectors = load_agent_sdk_vectors()
    assert vectors.root.resolve() == FIXTURES.resolve()
    for name in (*VECTOR_FILES, "README.md"):
        assert (FIXTURES / name).stat().st_size > 0, name
    assert len(vectors.replay()) == len(vectors.lines()) == 107


def test_a_missing_vector_directory_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_SDK_FIXTURES", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_agent_sdk_vectors()


@pytest.mark.parametrize("missing", VECTOR_FILES)
def test_a_missing_vector_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name in VECTOR_FILES:
        if name != missing:
            shutil.copy(FIXTURES / name, tmp_path / name)
    monkeypatch.setenv("AGENT_SDK_FIXTURES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load_agent_sdk_vectors()
    with pytest.raises(FileNotFoundError):
        AgentSdkVectors(tmp_path).check()


def test_conformance_vector_tests_fail_rather_than_skip_without_vectors(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "replay or vector or legacy",
            "tests/test_conformance_memory.py",
        ],
        cwd=ROOT,
        check=False,
        env=clean_env(AGENT_SDK_FIXTURES=str(tmp_path / "absent")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 1, result.stdout
    assert "4 errors" in summary, summary  # the fixture fails: pytest says error
    assert "skipped" not in summary, summary
    assert "agent-sdk vectors are missing" in result.stdout


def test_a_fresh_clone_without_shared_runs_the_vector_tests(tmp_path: Path) -> None:
    clone = copy_checkout(tmp_path / "clone")
    assert not (tmp_path / "shared").exists()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            "tests/test_envelope.py",
            "tests/test_conformance_memory.py",
        ],
        cwd=clone,
        check=False,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert "skipped" not in summary, summary
    assert "error" not in summary, summary


def test_license_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_sdist_ships_the_package_and_licence_and_no_partial_tests(tmp_path: Path) -> None:
    source = copy_checkout(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), "."],
        cwd=source,
        env=clean_env(),
        capture_output=True,
        check=True,
        timeout=300,
    )
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert "LICENSE" in names
    assert "s3_eventstore/testing/conformance.py" in names
    assert "s3_eventstore/demo/workload_data/agent_sdk_envelopes.jsonl" in names
    # The tests need conftest, fixtures, benchmarks and terraform: ship them whole or not
    # at all. They live in the repository.
    assert not [name for name in names if name.startswith("tests/")]


HIDE_PYTEST = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pytest", "_pytest", "pytest_asyncio"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Hide())
"""


def test_the_testing_package_imports_without_pytest() -> None:
    code = HIDE_PYTEST + (
        "import s3_eventstore.testing as t\n"
        "from s3_eventstore.testing.faultproxy import FaultProxy\n"
        "assert 'pytest' not in sys.modules\n"
        "print(len(t.load_agent_sdk_vectors().lines()))\n"
        "try:\n"
        "    t.EventStoreConformance\n"
        "except ModuleNotFoundError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "107"
    assert lines[1] == ("EventStoreConformance needs pytest: pip install 's3-eventstore[testing]'")


def _collected(*args: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done.stdout.strip().splitlines()[-1]


def test_slow_tests_run_only_when_asked() -> None:
    module = "tests/test_large_turns.py"  # a slow module: every test in it is slow
    default = _collected(module)
    assert re.match(r"no tests collected \(\d+ deselected\)", default), default
    only_slow = _collected("-m", "slow", module)
    everything = _collected(module, S3ES_SLOW="1")
    assert re.match(r"\d+ tests collected", only_slow), only_slow
    assert only_slow.split(" in ")[0] == everything.split(" in ")[0], (only_slow, everything)
