"""What a wrapped streaming handler produces, whichever way the inner one streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


async def items_of(produced: Any) -> AsyncIterator[Any]:
    """The messages of a streaming handler's result: the items of an async generator, or
    none from a coroutine that sends with `context.write` (e.g. health Watch)."""
    if hasattr(produced, "__aiter__"):
        async for item in produced:
            yield item
    else:
        await produced
