"""The named values the bucket seam returns: objects as GET, HEAD and LIST describe them,
object versions, and the put modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ListedObject", "ObjectHead", "PutMode", "StoredObject", "VersionRef"]

PutMode = Literal["create", "overwrite"]
"""``"create"``: only if no object has the key (``If-None-Match: *``); ``"overwrite"``."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object (or a byte range of it) as a GET returned it."""

    body: bytes
    """The bytes returned (the requested range only, for a ranged GET)."""
    etag: str
    """The object's ETag."""
    metadata: dict[str, str]
    """Its user metadata."""


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """An object as a HEAD described it."""

    etag: str
    """The object's ETag."""
    metadata: dict[str, str]
    """Its user metadata."""
    size: int
    """Its length in bytes."""


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One key as a LIST returned it."""

    key: str
    """The object key."""
    etag: str
    """Its ETag."""
    size: int
    """Its length in bytes."""
    last_modified: float | None = None
    """POSIX time of its last write, when the LIST said."""


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
