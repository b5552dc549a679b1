"""Bounded fan-out: run many requests with at most ``limit`` in flight, results in order."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterable

__all__ = ["bounded_gather"]

_T = TypeVar("_T")


async def bounded_gather(coroutines: Iterable[Awaitable[_T]], limit: int) -> list[_T]:
    """Run coroutines with at most ``limit`` in flight; results in the given order.

    When one fails, the others are cancelled and awaited before its error propagates,
    so no request of a failed read outlives it.
    """
    semaphore = asyncio.Semaphore(limit)

    async def bounded(coroutine: Awaitable[_T]) -> _T:
        async with semaphore:
            return await coroutine

    tasks = [asyncio.ensure_future(bounded(c)) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
