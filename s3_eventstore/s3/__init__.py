"""The S3 implementation of the EventStore contract."""

from s3_eventstore.format.keys import KeyLayout
from s3_eventstore.s3.buffers import OpenTurnInfo
from s3_eventstore.s3.metrics import RequestCounter
from s3_eventstore.s3.store import S3EventStore

__all__ = ["KeyLayout", "OpenTurnInfo", "RequestCounter", "S3EventStore"]
