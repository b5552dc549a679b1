"""The shared session's botocore data loader (s3_eventstore.s3.loader): the same data as
botocore's own loader, key order included, without listing every service first."""

from __future__ import annotations

import gzip
import json
import os
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import DataNotFoundError, UnknownServiceError
from botocore.loaders import JSONFileLoader, create_loader

from s3_eventstore.s3.loader import OrjsonFileLoader, ServiceLoader, create_service_loader
from s3_eventstore.s3.pool import shared_session

if TYPE_CHECKING:
    from pathlib import Path


def _exactly(value: Any) -> str:
    """A rendering that differs when any value, type of number, or key order differs."""
    return json.dumps(value)


@pytest.mark.parametrize(
    ("service", "type_name"),
    [
        ("s3", "service-2"),
        ("s3", "endpoint-rule-set-1"),
        ("s3", "paginators-1"),
        ("s3", "waiters-2"),
        ("sts", "service-2"),
    ],
)
def test_service_models_equal_botocore_s(service: str, type_name: str) -> None:
    ours = create_service_loader(None).load_service_model(service, type_name)
    theirs = create_loader().load_service_model(service, type_name)
    assert _exactly(ours) == _exactly(theirs)


@pytest.mark.parametrize("name", ["endpoints", "partitions", "sdk-default-configuration", "_retry"])
def test_data_files_equal_botocore_s(name: str) -> None:
    ours, our_path = create_service_loader(None).load_data_with_path(name)
    theirs, their_path = create_loader().load_data_with_path(name)
    assert our_path == their_path
    assert _exactly(ours) == _exactly(theirs)


def test_loading_a_model_lists_no_other_service(monkeypatch: pytest.MonkeyPatch) -> None:
    loader = create_service_loader(None)

    def refuse(*_: object, **__: object) -> list[str]:
        raise AssertionError("listed every service to load one")

    monkeypatch.setattr(loader, "list_available_services", refuse)
    model = loader.load_service_model("s3", "service-2")
    assert model["metadata"]["serviceId"] == "S3"
    assert "PutObject" in model["operations"]
    assert loader.load_service_model("s3", "endpoint-rule-set-1")["version"]


def test_an_unknown_service_is_botocore_s_own_error() -> None:
    with pytest.raises(UnknownServiceError) as ours:
        create_service_loader(None).load_service_model("no-such-service", "service-2")
    with pytest.raises(UnknownServiceError) as theirs:
        create_loader().load_service_model("no-such-service", "service-2")
    assert str(ours.value) == str(theirs.value)


def test_an_explicit_api_version_loads_what_botocore_loads() -> None:
    ours = create_service_loader(None).load_service_model("s3", "service-2", "2006-03-01")
    theirs = create_loader().load_service_model("s3", "service-2", "2006-03-01")
    assert _exactly(ours) == _exactly(theirs)
    with pytest.raises(DataNotFoundError):
        create_service_loader(None).load_service_model("s3", "service-2", "1999-01-01")


def _write_model(root: Path, version: str, title: str, *, gz: bool = False) -> None:
    folder = root / "s3" / version
    folder.mkdir(parents=True)
    model = {
        "version": "2.0",
        "metadata": {"serviceId": "S3", "title": title, "apiVersion": version},
        "operations": {},
        "shapes": {},
    }
    data = json.dumps(model).encode()
    if gz:
        (folder / "service-2.json.gz").write_bytes(gzip.compress(data))
    else:
        (folder / "service-2.json").write_bytes(data)
    (folder / "service-2.sdk-extras.json").write_text(
        json.dumps({"version": 1.0, "merge": {"metadata": {"extra": title}}})
    )


def test_data_path_folders_come_first_with_their_extras(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _write_model(first, "2999-01-01", "first")
    _write_model(second, "3000-01-01", "second", gz=True)
    data_path = os.pathsep.join([str(first), str(second)])
    ours = create_service_loader(data_path).load_service_model("s3", "service-2")
    theirs = create_loader(data_path).load_service_model("s3", "service-2")
    assert _exactly(ours) == _exactly(theirs)
    assert ours["metadata"] == {
        "serviceId": "S3",
        "title": "second",
        "apiVersion": "3000-01-01",
        "extra": "second",
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"b": 1, "a": [1.5, -0.0, 1e-7, 12345678901234567890123], "c": {"z": null, "y": true}}',
        '{"lone": "\\ud800", "n": 1}',  # orjson refuses a lone surrogate: json parses it
        '{"max": 9223372036854775807, "min": -9223372036854775808, "arn": "x:1234567890123456789"}',
        '{"dup": 1, "dup": 2}',
        '{"huge": 1e400}',
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_a_json_file_parses_as_botocore_parses_it(tmp_path: Path, text: str, gz: bool) -> None:
    base = tmp_path / "data"
    if gz:
        (tmp_path / "data.json.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (tmp_path / "data.json").write_text(text)
    ours = OrjsonFileLoader().load_file(str(base))
    theirs = JSONFileLoader().load_file(str(base))
    assert theirs is not None
    assert _exactly(ours) == _exactly(theirs)
    assert OrjsonFileLoader().exists(str(base))


def test_json_first_then_gzip_and_nothing_when_missing(tmp_path: Path) -> None:
    (tmp_path / "both.json").write_text('{"form": "json"}')
    (tmp_path / "both.json.gz").write_bytes(gzip.compress(b'{"form": "gz"}'))
    assert OrjsonFileLoader().load_file(str(tmp_path / "both")) == {"form": "json"}
    assert OrjsonFileLoader().load_file(str(tmp_path / "missing")) is None
    assert not OrjsonFileLoader().exists(str(tmp_path / "missing"))


def test_invalid_json_is_an_error_as_in_botocore(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"unterminated": ')
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        JSONFileLoader().load_file(str(tmp_path / "bad"))
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        OrjsonFileLoader().load_file(str(tmp_path / "bad"))


def test_the_shared_session_loads_with_it() -> None:
    loader = shared_session(None).get_component("data_loader")
    assert isinstance(loader, ServiceLoader)
    assert isinstance(loader.file_loader, OrjsonFileLoader)
