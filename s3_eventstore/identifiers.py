"""Validation of the two coordinates of every event: thread id and turn number.

Shared by every store so that bad input is refused the same way everywhere and
before anything is buffered or sent.
"""

from __future__ import annotations

from typing import Any, Final

from s3_eventstore.errors import InvalidThreadIdError, InvalidTurnError

__all__ = ["TURN_MAX", "check_thread_id", "check_turn"]

TURN_MAX: Final = 2**64 - 1
"""Turns are u64 in agent-sdk."""


def check_thread_id(thread_id: Any) -> str:
    """Return ``thread_id`` if it is a non-empty string that encodes to UTF-8.

    Raises:
        InvalidThreadIdError: not a ``str``, empty, or holding lone surrogates.
    """
    if not isinstance(thread_id, str):
        raise InvalidThreadIdError(f"thread id must be a str, not {type(thread_id).__name__}")
    if not thread_id:
        raise InvalidThreadIdError("thread id must not be empty")
    try:
        thread_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidThreadIdError(
            f"thread id {thread_id!r} is not valid Unicode (lone surrogate)"
        ) from None
    return thread_id


def check_turn(turn: Any) -> int:
    """Return ``turn`` if it is an ``int`` (not ``bool``) in ``0..2**64-1``.

    Raises:
        InvalidTurnError: any other value.
    """
    if type(turn) is not int:
        raise InvalidTurnError(f"turn must be an int, not {type(turn).__name__} {turn!r}")
    if not 0 <= turn <= TURN_MAX:
        raise InvalidTurnError(f"turn {turn} is outside 0..2**64-1")
    return turn
