"""The seam under the store: one object owns the S3 client and every request made with it.

:class:`Bucket` creates the aiobotocore client on first use (or borrows one), closes
what it created, bounds each call by ``operation_timeout`` (retries and backoff
included: botocore only bounds each attempt), counts requests, translates driver
errors into the library's error tree (:mod:`s3_eventstore.s3.errors`) and refuses any
write outside the prefix it owns. Its methods take keys and return named values; a
condition that does not hold is a value or its own error, never a status code for the
caller to inspect:

* ``get``/``head`` return ``None`` for a missing object (and ``get`` with ``if_match``
  for an object replaced since);
* ``put(mode="create")`` sends ``If-None-Match: *`` and ``put(if_match=etag)`` sends
  ``If-Match``; either raises :class:`~s3_eventstore.errors.PreconditionFailedError`
  when the condition fails; ``delete(key, if_match=etag)`` likewise;
* ``delete_keys`` batches DeleteObjects (1000 keys a request) and turns Object Lock
  refusals into :class:`~s3_eventstore.errors.ObjectLockedError`.

Why this module is longer than 500 lines: it is the one place every S3 operation the
library sends is written (with its precondition, error translation and ownership
check); splitting it would bring back a second place for them.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import (
    ConfigurationError,
    CorruptObjectError,
    ObjectLockedError,
    PreconditionFailedError,
    StorageError,
)
from s3_eventstore.s3.client import DeadlineClient, log_retries, open_client, within
from s3_eventstore.s3.errors import (
    error_code,
    is_not_found,
    is_precondition_failed,
    is_range_not_satisfiable,
    translate,
)
from s3_eventstore.s3.metrics import RequestCounter
from s3_eventstore.s3.objects import ListedObject, ObjectHead, PutMode, StoredObject, VersionRef
from s3_eventstore.s3.pool import ClientLease, count_by_context, lease_client

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from s3_eventstore.s3.config import ClientSettings

__all__ = [
    "DELETE_BATCH_LIMIT",
    "LIST_PAGE_LIMIT",
    "Bucket",
    "ListedObject",
    "ObjectHead",
    "PutMode",
    "StoredObject",
    "VersionRef",
    "deleted_version_id",
]

LIST_PAGE_LIMIT: Final = 1000
"""S3 returns at most 1000 keys per LIST page; never assume more."""
DELETE_BATCH_LIMIT: Final = 1000
"""S3 accepts at most 1000 keys per DeleteObjects request (moto does not enforce it)."""


class Bucket:
    """One bucket (and the prefix a store owns in it), reached through one client.

    Args:
        name: Bucket name.
        owned_prefix: Every write and delete must be under this prefix (``""``: the
            whole bucket); anything else is refused before a request is made.
        settings: How to create the client.
        client: An open aiobotocore S3 client to borrow (never closed here).
        session: An ``aioboto3.Session`` to create the client from.
        operation_timeout: Seconds one call may take in total, retries included;
            ``None`` for no bound. Expiry raises ``StorageUnavailableError``.
        requests: The counter the client's requests are recorded in.
    """

    def __init__(
        self,
        name: str,
        *,
        owned_prefix: str,
        settings: ClientSettings,
        client: Any = None,
        session: Any = None,
        operation_timeout: float | None = None,
        requests: RequestCounter | None = None,
    ) -> None:
        self.name = name
        """The bucket name."""
        self.owned_prefix = owned_prefix
        """Writes and deletes outside this prefix are refused."""
        self.settings = settings
        """How the client is (or was) created."""
        self.session = session
        """The ``aioboto3.Session`` clients are created from (``None``: a default one)."""
        self.operation_timeout = operation_timeout
        """Bound on the total time of one call, retries included (``None``: unbounded)."""
        self.requests = requests if requests is not None else RequestCounter()
        """HTTP requests this bucket's calls sent, by operation (retries included); a
        shared or borrowed client's other users are not counted."""
        self._client: Any = client
        self._stack: AsyncExitStack | None = None
        self._lease: ClientLease | None = None
        self._lock = asyncio.Lock()
        if client is not None:
            # Borrowed, maybe by many stores: count per call, as for a shared client (a
            # hook per store, never removed, would slow every request of the client).
            count_by_context(client)
            log_retries(client)

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The aiobotocore client in use (``None`` before the first request)."""
        return self._client

    async def open(self) -> None:
        """Create the client now rather than on the first request.

        Raises:
            StorageError: the client could not be created.
        """
        await self.bounded_client()

    async def close(self) -> None:
        """Close the client if this bucket created it (a borrowed one stays open); give
        back its share of a shared client (the last share closes it)."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            self._client = None
            await lease.release()
        if self._stack is not None:
            stack, self._stack = self._stack, None
            self._client = None
            await stack.aclose()

    async def bounded_client(self) -> Any:
        """The client, created on first use, each call bounded by ``operation_timeout``.

        For requests this class has no method for (the doctor's probes); prefer the methods.

        Raises:
            StorageError: the client could not be created.
        """
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    await self._create_client()
        if self._lease is not None or self._stack is None:
            # shared or borrowed: count this bucket's requests, not others'
            return DeadlineClient(self._client, self.operation_timeout, self.requests)
        if self.operation_timeout is None:
            return self._client
        return DeadlineClient(self._client, self.operation_timeout)

    async def _create_client(self) -> None:
        settings = self.settings
        try:
            if self.session is None and settings.share_client:
                self._lease = await lease_client(
                    settings, lambda stack: open_client(settings, stack)
                )
                self._client = self._lease.client
                return
            stack = AsyncExitStack()
            try:
                client = await open_client(settings, stack, self.session)
            except BaseException:
                await stack.aclose()
                raise
        except Exception as err:
            raise translate(err, operation="CreateClient") from err
        self.requests.attach(client)
        self._stack, self._client = stack, client

    def _checksum(self) -> dict[str, str]:
        """``ChecksumAlgorithm=SHA256`` for uploads (S3 verifies the bytes it stores), or
        nothing when ``checksum_headers`` is off (servers that answer 400 to them)."""
        return {"ChecksumAlgorithm": "SHA256"} if self.settings.checksum_headers else {}

    @property
    def url(self) -> str:
        """``s3://bucket/owned-prefix``."""
        return f"s3://{self.name}/{self.owned_prefix}"

    def check_owned(self, key: str) -> None:
        """Refuse a key outside the owned prefix.

        Defence in depth: every key comes from the key layout, but a write outside the
        prefix must be impossible, not merely unlikely.

        Raises:
            ConfigurationError: ``key`` is outside the owned prefix.
        """
        if not key.startswith(self.owned_prefix):
            raise ConfigurationError(f"refusing to write {key!r} outside {self.url}")

    # --- reads --------------------------------------------------------------------------

    async def get(
        self, key: str, *, byte_range: tuple[int, int] | None = None, if_match: str | None = None
    ) -> StoredObject | None:
        """GET an object, or bytes ``start..end-1`` of it; ``None`` when it does not exist
        or, with ``if_match``, when another version replaced it.

        Raises:
            CorruptObjectError: the object ends before ``byte_range`` starts (416).
            StorageError: the GET failed.
        """
        params: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if byte_range is not None:
            # An explicit range, not the suffix form "bytes=-N": some S3-compatible servers
            # (s3rver) answer suffix ranges wrongly.
            params["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        if if_match is not None:
            params["IfMatch"] = if_match
        client = await self.bounded_client()
        try:
            read = _get_with_body(client, params)
            # The deadline covers the body too: a body trickling in a byte at a time never
            # trips botocore's read timeout, yet must not outlast operation_timeout.
            if self.operation_timeout is None:
                response, body = await read
            else:
                response, body = await within(read, self.operation_timeout)
        except Exception as err:
            if is_not_found(err) or (if_match is not None and is_precondition_failed(err)):
                return None
            if byte_range is not None and is_range_not_satisfiable(err):
                # Every range this library asks for comes from a size it was told (the
                # LIST, a manifest, a stub): an object shorter than that is corrupt.
                raise CorruptObjectError(
                    f"object is shorter than the byte range {byte_range[0]}.."
                    f"{byte_range[1] - 1} its listed or recorded size implies",
                    key=key,
                ) from err
            raise translate(err, operation="GetObject", key=key) from err
        return StoredObject(body, str(response.get("ETag", "")), dict(response.get("Metadata", {})))

    async def head(self, key: str) -> ObjectHead | None:
        """HEAD an object; ``None`` when it does not exist.

        Raises:
            StorageError: the HEAD failed.
        """
        client = await self.bounded_client()
        try:
            response = await client.head_object(Bucket=self.name, Key=key)
        except Exception as err:
            if is_not_found(err):
                return None
            raise translate(err, operation="HeadObject", key=key) from err
        return ObjectHead(
            str(response.get("ETag", "")),
            dict(response.get("Metadata", {})),
            int(response.get("ContentLength", 0)),
        )

    async def list_pages(
        self, prefix: str, *, delimiter: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """ListObjectsV2 pages under ``prefix`` one at a time, as S3 returns them (at most
        1000 keys a page: never assume more), so a huge prefix is never held in memory.

        Raises:
            StorageError: a LIST failed (after the client's retries), or S3 truncated a
                page without a continuation token.
        """
        client = await self.bounded_client()
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "Bucket": self.name,
                "Prefix": prefix,
                "MaxKeys": LIST_PAGE_LIMIT,
            }
            if delimiter is not None:
                params["Delimiter"] = delimiter
            if token:
                params["ContinuationToken"] = token
            try:
                page = await client.list_objects_v2(**params)
            except Exception as err:
                raise translate(err, operation="ListObjectsV2", key=prefix) from err
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not token:
                raise StorageError(
                    f"ListObjectsV2 {prefix} was truncated without a continuation token",
                    operation="ListObjectsV2",
                )

    async def list_objects(self, prefix: str) -> AsyncIterator[list[ListedObject]]:
        """The objects of each LIST page under ``prefix``, one page at a time.

        Raises:
            StorageError: as :meth:`list_pages`.
        """
        async for page in self.list_pages(prefix):
            yield [_listed(obj) for obj in page.get("Contents", [])]

    async def list_all(self, prefix: str) -> list[ListedObject]:
        """Every object under ``prefix``, following continuation tokens page by page.

        Raises:
            StorageError: as :meth:`list_pages`.
        """
        return [obj async for page in self.list_objects(prefix) for obj in page]

    # --- writes -------------------------------------------------------------------------

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        mode: PutMode = "create",
        if_match: str | None = None,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/zstd",
    ) -> str:
        """PUT an object (with a SHA-256 checksum); returns its ETag.

        ``mode="create"`` succeeds only if no object has the key; ``if_match`` only if the
        object's ETag is still that one (for updates; it implies ``"overwrite"``).

        Raises:
            ConfigurationError: ``key`` is outside the owned prefix.
            PreconditionFailedError: the condition did not hold.
            StorageError: the PUT failed.
        """
        self.check_owned(key)
        params: dict[str, Any] = {
            "Bucket": self.name,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            **self._checksum(),
        }
        if if_match is not None:
            params["IfMatch"] = if_match
        elif mode == "create":
            params["IfNoneMatch"] = "*"
        if metadata is not None:
            params["Metadata"] = metadata
        client = await self.bounded_client()
        try:
            response = await client.put_object(**params)
        except Exception as err:
            raise _precondition_or_translate(err, "PutObject", key) from err
        return str(response["ETag"])

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """DELETE one object; with ``if_match``, only if its ETag is still that one.

        Raises:
            ConfigurationError: ``key`` is outside the owned prefix.
            PreconditionFailedError: ``if_match`` did not hold.
            StorageError: the DELETE failed.
        """
        self.check_owned(key)
        params: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if if_match is not None:
            params["IfMatch"] = if_match
        client = await self.bounded_client()
        try:
            await client.delete_object(**params)
        except Exception as err:
            raise _precondition_or_translate(err, "DeleteObject", key) from err

    async def delete_keys(self, keys: Sequence[str]) -> int:
        """DeleteObjects in batches of at most 1000 keys; returns how many were deleted.

        Raises:
            ConfigurationError: a key is outside the owned prefix (nothing of its batch
                was deleted).
            ObjectLockedError: Object Lock retention (or a policy) kept some objects; lists
                what was and was not deleted.
            StorageError: a request failed.
        """
        deleted: list[str] = []
        for start in range(0, len(keys), DELETE_BATCH_LIMIT):
            batch = list(keys[start : start + DELETE_BATCH_LIMIT])
            deleted.extend(await self._delete_batch(batch, deleted, keys))
        return len(deleted)

    async def _delete_batch(
        self, batch: list[str], deleted_so_far: list[str], all_keys: Sequence[str]
    ) -> list[str]:
        for key in batch:
            self.check_owned(key)
        client = await self.bounded_client()
        try:
            response = await client.delete_objects(
                Bucket=self.name,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
        except Exception as err:
            raise translate(err, operation="DeleteObjects", key=batch[0]) from err
        errors = response.get("Errors", [])
        if not errors:
            return batch
        failed = {error.get("Key") for error in errors}
        if None in failed:  # an error naming no key: which ones went is unknown
            failed = set(batch)
        done = deleted_so_far + [key for key in batch if key not in failed]
        not_done = [key for key in all_keys if key not in set(done)]
        codes = sorted({str(error.get("Code")) for error in errors})
        message = (
            f"DeleteObjects could not delete {len(failed)} object(s) ({', '.join(codes)}); "
            f"deleted {len(done)}, kept {len(not_done)}"
        )
        if "AccessDenied" in codes:
            raise ObjectLockedError(
                message + " - Object Lock retention or a policy protects them",
                deleted=done,
                not_deleted=not_done,
            )
        raise StorageError(message, operation="DeleteObjects", code=codes[0])

    # --- versions -----------------------------------------------------------------------

    async def list_versions(self, prefix: str) -> list[VersionRef]:
        """Every version and delete marker under ``prefix``, following the page markers.

        Raises:
            StorageError: a LIST failed, or was truncated without markers.
        """
        client = await self.bounded_client()
        refs: list[VersionRef] = []
        params: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": LIST_PAGE_LIMIT}
        while True:
            try:
                page = await client.list_object_versions(**params)
            except Exception as err:
                raise translate(err, operation="ListObjectVersions", key=prefix) from err
            refs.extend(
                VersionRef(str(item["Key"]), str(item.get("VersionId") or "null"), False)
                for item in page.get("Versions", [])
            )
            refs.extend(
                VersionRef(str(item["Key"]), str(item.get("VersionId") or "null"), True)
                for item in page.get("DeleteMarkers", [])
            )
            if not page.get("IsTruncated"):
                return refs
            key_marker = page.get("NextKeyMarker")
            if not key_marker:
                raise StorageError(
                    f"ListObjectVersions {prefix} was truncated without a key marker",
                    operation="ListObjectVersions",
                )
            params["KeyMarker"] = key_marker
            params.pop("VersionIdMarker", None)
            if page.get("NextVersionIdMarker"):
                params["VersionIdMarker"] = page["NextVersionIdMarker"]

    async def delete_versions(
        self, batch: Sequence[VersionRef]
    ) -> tuple[set[tuple[str, str]], dict[str, str]]:
        """One DeleteObjects naming each version (at most 1000): the ``(key, version id)``
        pairs deleted, and the error code per key that was not.

        Raises:
            ConfigurationError: a key is outside the owned prefix (nothing was deleted).
            StorageError: the request failed.
        """
        for ref in batch:
            self.check_owned(ref.key)
        client = await self.bounded_client()
        try:
            # Not Quiet: the Deleted list says exactly which versions went. Error entries
            # do not always name the version (moto omits it), so they only give the codes.
            response = await client.delete_objects(
                Bucket=self.name,
                Delete={
                    "Objects": [{"Key": ref.key, "VersionId": ref.version_id} for ref in batch],
                    "Quiet": False,
                },
            )
        except Exception as err:
            raise translate(err, operation="DeleteObjects", key=batch[0].key) from err
        gone = {
            (str(item.get("Key")), deleted_version_id(item)) for item in response.get("Deleted", [])
        }
        codes = {
            str(error.get("Key")): str(error.get("Code")) for error in response.get("Errors", [])
        }
        return gone, codes

    # --- multipart uploads --------------------------------------------------------------

    async def create_multipart(self, key: str, *, metadata: dict[str, str]) -> str:
        """CreateMultipartUpload (SHA-256 part checksums); returns the upload id.

        Raises:
            ConfigurationError: ``key`` is outside the owned prefix.
            StorageError: the request failed.
        """
        self.check_owned(key)
        client = await self.bounded_client()
        try:
            response = await client.create_multipart_upload(
                Bucket=self.name,
                Key=key,
                ContentType="application/zstd",
                Metadata=metadata,
                **self._checksum(),
            )
        except Exception as err:
            raise translate(err, operation="CreateMultipartUpload", key=key) from err
        return str(response["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: bytes
    ) -> dict[str, Any]:
        """UploadPart; returns the part as CompleteMultipartUpload wants it.

        Raises:
            StorageError: the request failed.
        """
        client = await self.bounded_client()
        try:
            response = await client.upload_part(
                Bucket=self.name,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
                **self._checksum(),
            )
        except Exception as err:
            raise translate(err, operation="UploadPart", key=key) from err
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if response.get("ChecksumSHA256"):
            part["ChecksumSHA256"] = response["ChecksumSHA256"]
        return part

    async def complete_multipart(
        self, key: str, upload_id: str | None, parts: list[dict[str, Any]]
    ) -> str:
        """CompleteMultipartUpload with ``If-None-Match: *``; returns the ETag.

        Raises:
            PreconditionFailedError: an object with the key exists (the upload stays).
            StorageError: the request failed (``code`` ``NoSuchUpload`` when the upload is
                gone: completed by an earlier attempt, or aborted by someone else).
        """
        client = await self.bounded_client()
        try:
            response = await client.complete_multipart_upload(
                Bucket=self.name,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except Exception as err:
            raise _precondition_or_translate(err, "CompleteMultipartUpload", key) from err
        return str(response["ETag"])

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload that is gone already counts as aborted.

        Raises:
            StorageError: the request failed.
        """
        client = await self.bounded_client()
        try:
            await client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)
        except Exception as err:
            if error_code(err) == "NoSuchUpload":
                return
            raise translate(err, operation="AbortMultipartUpload", key=key) from err


async def _get_with_body(client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    response: dict[str, Any] = await client.get_object(**params)
    async with response["Body"] as stream:
        return response, bytes(await stream.read())


def _listed(obj: dict[str, Any]) -> ListedObject:
    modified = obj.get("LastModified")
    return ListedObject(
        str(obj["Key"]),
        str(obj.get("ETag", "")),
        int(obj["Size"]),
        modified.timestamp() if isinstance(modified, datetime) else None,
    )


def _precondition_or_translate(err: Exception, operation: str, key: str) -> StorageError:
    if is_precondition_failed(err):
        return PreconditionFailedError(
            f"{operation} {key}: the precondition failed",
            operation=operation,
            code="PreconditionFailed",
        )
    return translate(err, operation=operation, key=key)


def deleted_version_id(item: dict[str, Any]) -> str:
    """The version a ``Deleted`` entry of a DeleteObjects answer names, in either shape a
    server gives when the request named versions: S3 and radosgw put it in ``VersionId``
    (and, for a delete marker, also in ``DeleteMarkerVersionId``); SeaweedFS names a
    removed delete marker by ``DeleteMarkerVersionId`` alone. ``"null"`` when neither
    (the unversioned null version)."""
    version = item.get("VersionId")
    if not version and item.get("DeleteMarker"):
        version = item.get("DeleteMarkerVersionId")
    return str(version or "null")
