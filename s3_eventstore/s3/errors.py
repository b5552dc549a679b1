"""Translation of botocore/aiohttp failures into the library's error tree, in one place.

Every S3 call goes through :func:`translate`; callers that give a code a meaning of
their own (412 on a conditional PUT, 404 on a GET) test :func:`error_code` first.
"""

from __future__ import annotations

from typing import Any, Final

from s3_eventstore.errors import (
    AccessDeniedError,
    BucketNotFoundError,
    StorageError,
    StorageThrottledError,
    StorageUnavailableError,
)

__all__ = ["error_code", "http_status", "is_not_found", "is_precondition_failed", "translate"]

THROTTLING_CODES: Final = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
    }
)
UNAVAILABLE_CODES: Final = frozenset(
    {"InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"}
)
DENIED_CODES: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "KMS.NotFoundException",
    }
)
NOT_FOUND_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(err: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (``None`` for anything else)."""
    response: Any = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def http_status(err: BaseException) -> int | None:
    """The HTTP status of a botocore ``ClientError`` (``None`` for anything else)."""
    response: Any = getattr(err, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def is_precondition_failed(err: BaseException) -> bool:
    """True for the 412 of a conditional request whose condition did not hold."""
    return error_code(err) == "PreconditionFailed" or http_status(err) == 412


def is_range_not_satisfiable(err: BaseException) -> bool:
    """True for the 416 of a ranged GET that starts past the object's end."""
    return error_code(err) == "InvalidRange" or http_status(err) == 416


def is_not_found(err: BaseException) -> bool:
    """True for 404 NoSuchKey (GET) and 404 NotFound (HEAD)."""
    return error_code(err) in NOT_FOUND_CODES or (
        http_status(err) == 404 and error_code(err) != "NoSuchBucket"
    )


_CHECKSUMMED: Final = frozenset(
    {"PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload", "DeleteObjects"}
)
"""Operations that carry x-amz-checksum-* headers by default (DeleteObjects always: botocore
adds one where S3 requires a checksum)."""
_CHECKSUM_REFUSAL_CODES: Final = frozenset(
    {"InvalidRequest", "BadRequest", "InvalidArgument", "NotImplemented"}
)
"""What servers that do not know the flexible-checksum headers answer them with."""


def translate(err: BaseException, *, operation: str, key: str | None = None) -> StorageError:
    """Map a driver exception to the library's error tree (raise the result ``from err``)."""
    where = f"{operation} {key}" if key else operation
    code = error_code(err)
    status = http_status(err)
    if code is not None:
        message = f"{where} failed: {code} (HTTP {status}): {err}"
        if code == "NoSuchBucket":
            return BucketNotFoundError(message, operation=operation, code=code)
        if code in DENIED_CODES or status == 403:
            return AccessDeniedError(message, operation=operation, code=code)
        if code in THROTTLING_CODES or status in (429, 503):
            return StorageThrottledError(message, operation=operation, code=code)
        if code in UNAVAILABLE_CODES or (status is not None and status >= 500):
            return StorageUnavailableError(message, operation=operation, code=code)
        if status in (400, 501) and code in _CHECKSUM_REFUSAL_CODES and operation in _CHECKSUMMED:
            message += (
                "; if this S3-compatible server refuses x-amz-checksum-* headers, pass "
                "checksum_headers=False (CLI: --no-checksum-headers); `s3-eventstore doctor` "
                "tells"
            )
        return StorageError(message, operation=operation, code=code)
    name = type(err).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return AccessDeniedError(f"{where}: no usable AWS credentials: {err}", operation=operation)
    if _is_network_error(err):
        return StorageUnavailableError(
            f"{where} failed: {name}: {err}", operation=operation, code=name
        )
    return StorageError(f"{where} failed: {name}: {err}", operation=operation, code=name)


def _is_network_error(err: BaseException) -> bool:
    # Imported here so that `import s3_eventstore` stays free of botocore (cold starts).
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(err, BotoConnectionError | HTTPClientError | TimeoutError | OSError) or (
        type(err).__module__.startswith("aiohttp")
    )
