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
from typing import TYPE_CHECKING

from s3_eventstore.errors import ObjectLockedError, StorageError
from s3_eventstore.s3.bucket import LIST_PAGE_LIMIT as PAGE_LIMIT

if TYPE_CHECKING:
    from s3_eventstore.s3.bucket import Bucket
    from s3_eventstore.s3.objects import VersionRef

__all__ = ["PurgeReport", "purge_versions"]


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge removed."""

    versions: int
    """Object versions deleted (current and noncurrent)."""
    delete_markers: int
    """Delete markers deleted."""


async def purge_versions(bucket: Bucket, prefix: str) -> PurgeReport:
    """Delete every version and delete marker under ``prefix``.

    The bucket refuses every key outside the prefix it owns before anything is deleted,
    so a purge can never reach outside the store's prefix.

    Raises:
        ConfigurationError: a listed key is outside the bucket's owned prefix.
        ObjectLockedError: Object Lock kept some versions; everything else was deleted.
        StorageError: a request failed, or versions could not be deleted for another
            reason.
    """
    refs = await bucket.list_versions(prefix)
    for ref in refs:
        bucket.check_owned(ref.key)
    deleted: list[VersionRef] = []
    failed: dict[VersionRef, str] = {}
    for start in range(0, len(refs), PAGE_LIMIT):
        batch = refs[start : start + PAGE_LIMIT]
        gone, error_codes = await bucket.delete_versions(batch)
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
