"""docs/ANALYTICS.md's Spark recipe against files ``publish`` wrote (copied out of the
bucket to local disk): Spark reads them with the documented settings and agrees with the
library's ``events`` view.

Opt-in: it needs the ``test-spark`` extra (pyspark, a 456 MB sdist) and a JDK 17+ on
PATH (Debian: openjdk-17-jre-headless), and is skipped without them. Not in CI: installing
pyspark took 78 s to download and 67 s to build and install here, and a local Spark session
37-39 s to start on 2 cores (docs/ANALYTICS.md, "Spark"), against CI's 20-minute budget.
Run: ``pip install -e '.[test-spark]' && python -m pytest tests/test_spark_recipe.py``.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from s3_eventstore import S3EventStore
from s3_eventstore.demo.workload import WorkloadSpec
from tests.archive_fixtures import PREFIX, cli_env, write_archive

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")
pyspark_sql = pytest.importorskip("pyspark.sql", reason="opt-in: pip install -e '.[test-spark]'")
if shutil.which("java") is None:  # pragma: no cover - depends on the machine
    pytest.skip("Spark needs a JDK (java on PATH)", allow_module_level=True)

from s3_eventstore.ops import analytics  # after the skips
from s3_eventstore.ops.columnar.log import read_state
from s3_eventstore.ops.columnar.publish import publish

if TYPE_CHECKING:
    from pathlib import Path

    from s3_eventstore.demo.embedded import EmbeddedS3Server

__all__ = ["cli_env"]  # fixture used by name

pytestmark = pytest.mark.usefixtures("cli_env")


def test_spark_reads_the_published_files_as_documented(
    s3_server: EmbeddedS3Server, bucket: str, backdoor: Any, tmp_path: Path
) -> None:
    async def write_and_publish() -> list[str]:
        async with S3EventStore(
            bucket, PREFIX, endpoint_url=s3_server.endpoint_url, session=s3_server.session()
        ) as store:
            threads = await write_archive(
                store, WorkloadSpec(threads=4, turns_per_thread=3, events_per_turn=6, seed=21)
            )
            await store.compact(next(iter(threads)))
            await publish(store)
            state = await read_state(store)
            return [key[len(state.root) :] for key in state.files]

    files = asyncio.run(write_and_publish())
    root = tmp_path / "published"
    for relative in files:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        body = backdoor.get_object(Bucket=bucket, Key=f"{PREFIX}/published/{relative}")["Body"]
        target.write_bytes(body.read())

    con = analytics.connect(
        f"s3://{bucket}/{PREFIX}", endpoint_url=s3_server.endpoint_url, published_only=True
    )
    try:
        by_type = dict(con.execute("SELECT type, count(*) FROM events GROUP BY type").fetchall())
        tokens = dict(
            con.execute(
                "SELECT thread_id, sum(input_tokens + output_tokens) FROM events "
                "WHERE type = 'turn_complete' GROUP BY thread_id"
            ).fetchall()
        )
        rows = {
            (thread, int(turn), position): (nanos, envelope)
            for thread, turn, position, nanos, envelope in con.execute(
                'SELECT thread_id, turn, position, epoch_ns("timestamp"), envelope FROM events'
            ).fetchall()
        }
    finally:
        con.close()

    functions = pytest.importorskip("pyspark.sql.functions")
    spark = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")  # as documented
        .getOrCreate()
    )
    try:
        events = (
            spark.read.option("basePath", str(root))
            .parquet(str(root / "day=*"))
            .withColumn("ts", functions.timestamp_micros(functions.expr("timestamp div 1000")))
        )
        assert {r["type"]: r["count"] for r in events.groupBy("type").count().collect()} == by_type
        spark_tokens = (
            events.where("type = 'turn_complete'")
            .groupBy("thread_id")
            .agg(functions.sum(functions.col("input_tokens") + functions.col("output_tokens")))
            .collect()
        )
        assert {r[0]: r[1] for r in spark_tokens} == tokens
        got = {
            (r["thread_id"], int(r["turn"]), r["position"]): (r["timestamp"], r["envelope"])
            for r in events.select(
                "thread_id", "turn", "position", "timestamp", "envelope"
            ).collect()
        }
        assert got == rows  # every nanosecond and every envelope byte
        assert events.where("day IS NULL OR ts IS NULL").count() == 0
    finally:
        spark.stop()
