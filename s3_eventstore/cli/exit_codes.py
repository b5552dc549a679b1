"""Exit codes of ``s3-eventstore``, in one place so scripts and tests agree on them."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode"]


class ExitCode(IntEnum):
    """What the process exit status means."""

    OK = 0
    """Success (also when a downstream pipe closed early: ``| head`` is not an error)."""
    ABORTED = 1
    """The user declined a confirmation, or pressed Ctrl-C (click's convention)."""
    USAGE = 2
    """Bad arguments or configuration (click's own usage errors use 2 as well)."""
    NOT_FOUND = 3
    """The thread or turn asked for does not exist."""
    INTEGRITY = 4
    """An object failed verification: corrupt, or in a format this version cannot read."""
    STORAGE = 5
    """The object store failed or refused a request (unreachable, access denied, no bucket),
    or ``doctor`` found a behaviour the store requires missing."""
    MISSING_EXTRA = 6
    """An optional dependency is not installed: ``pip install 's3-eventstore[EXTRA]'``."""
    QUERY = 7
    """A well-formed query failed while it ran (a failed cast, out of memory, an internal
    error): neither a usage mistake nor a storage failure."""
