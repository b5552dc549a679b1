"""Purging a thread from a versioned bucket: every object version and delete marker.

``clear`` deletes the current objects, which in a versioned bucket only adds delete
markers: the data stays in noncurrent versions. ``purge`` removes those too, for
erasure requests. It lists with ListObjectVersions (at most 1000 entries a page, the
key and version-id markers followed page by page) and deletes with DeleteObjects
naming each ``VersionId`` (at most 1000 a request, S3's limit; moto does not enforce
it). Deleting a specific version is permanent and adds no delete marker.

Object Lock: a version under retention or legal hold cannot be deleted; S3 answers
``AccessDenied`` for it inside a successful DeleteObjects. Purge deletes everything it
can, then raises ``ObjectLockedError`` listing what was and was not deleted. (``clear``
on such a bucket succeeds: adding a delete marker is allowed under Object Lock.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from s3_eventstore.errors import ObjectLockedError, StorageError
from s3_eventstore.s3.errors import translate

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PurgeReport", "VersionRef", "purge_versions"]

PAGE_LIMIT: Final = 1000
"""Entries per ListObjectVersions page and per DeleteObjects request (S3's limits)."""


@dataclass(frozen=True, slots=True)
class VersionRef:
    """One object version or delete marker."""

    key: str
    """The object key."""
    version_id: str
    """Its version id (``"null"`` for what was written before versioning was enabled)."""
    delete_marker: bool
    """True for a delete marker."""

    def __str__(self) -> str:
        return f"{self.key}?versionId={self.version_id}"


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge removed."""

    versions: int
    """Object versions deleted (current and noncurrent)."""
    delete_markers: int
    """Delete markers deleted."""


async def list_versions(client: Any, bucket: str, prefix: str) -> list[VersionRef]:
    """Every version and delete marker under ``prefix``, following the page markers.

    Raises:
        StorageError: a LIST failed, or was truncated without markers.
    """
    refs: list[VersionRef] = []
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_LIMIT}
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


async def purge_versions(
    client: Any, bucket: str, prefix: str, *, check_owned: Callable[[str], None]
) -> PurgeReport:
    """Delete every version and delete marker under ``prefix``.

    ``check_owned`` is called on every key before anything is deleted, so a purge can
    never reach outside the store's prefix.

    Raises:
        ObjectLockedError: Object Lock kept some versions; everything else was deleted.
        StorageError: a request failed, or versions could not be deleted for another
            reason.
    """
    refs = await list_versions(client, bucket, prefix)
    for ref in refs:
        check_owned(ref.key)
    deleted: list[VersionRef] = []
    failed: dict[VersionRef, str] = {}
    for start in range(0, len(refs), PAGE_LIMIT):
        batch = refs[start : start + PAGE_LIMIT]
        try:
            # Not Quiet: the Deleted list says exactly which versions went. Error entries
            # do not always name the version (moto omits it), so they only give the codes.
            response = await client.delete_objects(
                Bucket=bucket,
                Delete={
                    "Objects": [{"Key": ref.key, "VersionId": ref.version_id} for ref in batch],
                    "Quiet": False,
                },
            )
        except Exception as err:
            raise translate(err, operation="DeleteObjects", key=batch[0].key) from err
        gone = {
            (str(item.get("Key")), str(item.get("VersionId") or "null"))
            for item in response.get("Deleted", [])
        }
        error_codes = {
            str(error.get("Key")): str(error.get("Code")) for error in response.get("Errors", [])
        }
        for ref in batch:
            if (ref.key, ref.version_id) in gone:
                deleted.append(ref)
            else:
                failed[ref] = error_codes.get(ref.key, "NotDeleted")
    if failed:
        codes = sorted(set(failed.values()))
        message = (
            f"purge could not delete {len(failed)} version(s) ({', '.join(codes)}); "
            f"deleted {len(deleted)}"
        )
        if set(codes) <= {"AccessDenied"}:
            raise ObjectLockedError(
                message + " - Object Lock retention or a legal hold protects them",
                deleted=[str(ref) for ref in deleted],
                not_deleted=[str(ref) for ref in failed],
            )
        raise StorageError(message, operation="DeleteObjects", code=codes[0])
    return PurgeReport(
        versions=sum(1 for ref in deleted if not ref.delete_marker),
        delete_markers=sum(1 for ref in deleted if ref.delete_marker),
    )
