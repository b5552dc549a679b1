"""The Glue table of the Parquet tier matches the schema the library writes."""

from __future__ import annotations

import importlib.util

import pytest
from policy_actions import module_locals
from terraform_runner import unavailable

from s3_eventstore.ops.columnar.schema import COLUMNS, PARTITION_COLUMN


@pytest.fixture(scope="module", autouse=True)
def _require_hcl2() -> None:
    if importlib.util.find_spec("hcl2") is None:
        unavailable("python-hcl2 is not installed (pip install python-hcl2)")


def _hive_type(arrow_type: object) -> str:
    """How Athena (Hive) and Spark name a pyarrow type of the tier."""
    import pyarrow as pa

    assert isinstance(arrow_type, pa.DataType)
    if pa.types.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        assert arrow_type.tz == "UTC"  # an instant: Parquet isAdjustedToUTC = true
        return "timestamp"
    names = {pa.int32(): "int", pa.int64(): "bigint", pa.string(): "string"}
    return names[arrow_type]


def test_glue_columns_are_the_parquet_schema() -> None:
    pytest.importorskip("pyarrow")
    from s3_eventstore.ops.columnar.schema import arrow_schema

    declared = [(c["name"], c["type"]) for c in module_locals()["published_columns"]]
    written = [(field.name, _hive_type(field.type)) for field in arrow_schema()]
    assert declared == written
    assert declared == [(c.name, c.glue_type) for c in COLUMNS]
    comments = [c["comment"] for c in module_locals()["published_columns"]]
    assert comments == [c.comment for c in COLUMNS]


def test_the_partition_is_the_folder_the_publisher_writes() -> None:
    from s3_eventstore.ops.columnar.log import PUBLISHED_DIR

    assert module_locals()["published_prefix"] == "${local.prefix}" + PUBLISHED_DIR
    assert PARTITION_COLUMN == "day"
