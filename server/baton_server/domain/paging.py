"""A page of a list and the cursors that follow its items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items, the cursor after each one (so that a page may be cut
    short, e.g. to fit a message), and whether more items follow the last."""

    items: list[T]
    cursors: list[int]
    more: bool

    @classmethod
    def of(cls, found: list[T], limit: int, cursor: Callable[[T], int]) -> Page[T]:
        """A page from `limit + 1` fetched items (the extra one tells that more follow)."""
        items = found[:limit]
        return cls(items, [cursor(item) for item in items], len(found) > limit)

    @property
    def next_after(self) -> int | None:
        """The cursor to continue from, or None on the last page."""
        return self.cursors[-1] if self.more and self.cursors else None

    def cut(self, count: int) -> Page[T]:
        """The first `count` items; more follow if any were cut."""
        if count >= len(self.items):
            return self
        return Page(self.items[:count], self.cursors[:count], True)
