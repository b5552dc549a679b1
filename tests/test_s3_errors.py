"""S3 error translation: one table, pinned."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from s3_eventstore import (
    AccessDeniedError,
    BucketNotFoundError,
    StorageError,
    StorageThrottledError,
    StorageUnavailableError,
)
from s3_eventstore.s3.errors import is_not_found, is_precondition_failed, translate


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchBucket", 404, BucketNotFoundError),
        ("AccessDenied", 403, AccessDeniedError),
        ("InvalidAccessKeyId", 403, AccessDeniedError),
        ("KMS.AccessDeniedException", 400, AccessDeniedError),
        ("SlowDown", 503, StorageThrottledError),
        ("ServiceUnavailable", 503, StorageThrottledError),
        ("TooManyRequests", 429, StorageThrottledError),
        ("InternalError", 500, StorageUnavailableError),
        ("BadGateway", 502, StorageUnavailableError),
        ("InvalidArgument", 400, StorageError),
    ],
)
def test_client_errors(code: str, status: int, expected: type[StorageError]) -> None:
    error = translate(client_error(code, status), operation="PutObject", key="k")
    assert type(error) is expected
    assert error.code == code
    assert error.operation == "PutObject"
    assert f"PutObject k failed: {code}" in str(error)


def test_throttling_is_also_unavailable_and_a_connection_error() -> None:
    error = translate(client_error("SlowDown", 503), operation="PutObject")
    assert isinstance(error, StorageUnavailableError)
    assert isinstance(error, ConnectionError)


@pytest.mark.parametrize(
    "err",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        TimeoutError(),
    ],
)
def test_network_errors(err: Exception) -> None:
    assert type(translate(err, operation="GetObject")) is StorageUnavailableError


def test_credentials_and_unknown() -> None:
    assert type(translate(NoCredentialsError(), operation="GetObject")) is AccessDeniedError
    assert type(translate(RuntimeError("?"), operation="GetObject")) is StorageError


def test_special_codes() -> None:
    assert is_precondition_failed(client_error("PreconditionFailed", 412))
    assert not is_precondition_failed(client_error("InternalError", 500))
    assert is_not_found(client_error("NoSuchKey", 404))
    assert is_not_found(client_error("404", 404))
    assert not is_not_found(client_error("NoSuchBucket", 404))
    assert not is_not_found(ValueError())
