"""A quick start for the ``s3-eventstore`` process: most of a small command is start-up.

``threads`` or ``cat`` on a small archive spends most of its time before its first
request: importing botocore, aiobotocore and aiohttp, parsing botocore's S3 model, and
creating the client (docs/BENCHMARKS.md, "CLI start-up", has the breakdown). What the
library can do about that it does for every caller (the shared session's
:class:`~s3_eventstore.s3.loader.ServiceLoader`, no CA bundle for ``http://``
endpoints); this module holds what only a process of its own may do:

* :func:`begin`, called once by the process's entry point (``s3-eventstore``,
  ``python -m s3_eventstore``), never by click's test runner nor by a program that
  imports the CLI: it keeps httpx's own command line (``httpx._main``, which imports
  rich and pygments) from loading when aiobotocore imports httpx. aiobotocore only
  checks whether httpx exists; httpx itself treats that module as optional (its
  ``cli`` extra), and nothing here runs httpx's command line.
* :func:`startup_allocations`, around creating a command's S3 client: the imports and
  parsed models made there live until the process ends, so the cyclic garbage
  collector is paused while they are made (it would scan them again and again and
  find nothing), and, in the process :func:`begin` started, they are then frozen
  (``gc.freeze``: later collections, the one at exit included, skip them). Collection
  resumes as before for everything the command itself allocates.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["SKIPPED_MODULES", "begin", "begun", "startup_allocations"]

SKIPPED_MODULES: Final = ("httpx._main",)
"""Modules the CLI process never loads: httpx's command-line client (rich, pygments)."""

_begun = False


def begin() -> None:
    """Set up the process for a quick start; the entry point calls it once, first."""
    global _begun
    _begun = True
    for name in SKIPPED_MODULES:
        # ``None`` in sys.modules makes ``import name`` raise ImportError, which httpx
        # catches (its command line is an optional extra). A module already loaded stays.
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]


def begun() -> bool:
    """Whether :func:`begin` ran in this process (it is a CLI process of its own)."""
    return _begun


@contextlib.contextmanager
def startup_allocations() -> Iterator[None]:
    """Pause the cyclic garbage collector while objects that live until exit are made
    (creating the S3 client); in a process :func:`begin` started, freeze them after.

    Reference counting still frees everything that is not kept; only the search for
    unreachable cycles waits, for the few hundred milliseconds this takes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _begun:
            gc.freeze()
        if was_enabled:
            gc.enable()
