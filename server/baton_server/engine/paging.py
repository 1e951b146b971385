"""A page of a list and the cursor that follows it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor after its last item when more follow."""

    items: list[T]
    next_after: int | None
