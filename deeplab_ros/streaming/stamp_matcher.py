"""A bounded buffer of stamped items that hands out the one nearest a stamp.

The node pairs each colour frame with the depth image of (nearly) the same stamp after
inference, on its worker: :class:`StampMatcher` keeps the newest few items whatever the
rates, and waits a little for one that has not arrived yet. Stamps are plain integers
(nanoseconds), so nothing here knows about ROS messages.
"""

from __future__ import annotations

from collections import deque
import threading
import time
from typing import Generic, TypeVar

Item = TypeVar('Item')


class StampMatcher(Generic[Item]):
    """The last ``capacity`` stamped items; finds the one nearest a stamp (thread-safe).

    Older items fall out as new ones arrive, so memory stays bounded whatever the rates.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        self._items: deque[tuple[int, Item]] = deque(maxlen=capacity)
        self._condition = threading.Condition()
        self._last_added: float | None = None

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    def add(self, stamp: int, item: Item) -> None:
        """Keep ``item`` stamped ``stamp`` (nanoseconds)."""
        with self._condition:
            self._items.append((stamp, item))
            self._last_added = time.monotonic()
            self._condition.notify_all()

    def silent_for(self) -> float | None:
        """Seconds since the last item arrived (None when none ever did)."""
        with self._condition:
            return None if self._last_added is None else time.monotonic() - self._last_added

    def clear(self) -> None:
        """Forget every item."""
        with self._condition:
            self._items.clear()

    def match(self, stamp: int, tolerance_ns: int, wait_s: float = 0.0) -> Item | None:
        """The item nearest ``stamp`` within ``tolerance_ns``, or None.

        While no item at or after ``stamp`` has arrived, waits up to ``wait_s`` seconds for
        one (the depth image of a frame may arrive just after the frame).
        """
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._condition:
            while True:
                best = self._nearest(stamp, tolerance_ns)
                newest = self._items[-1][0] if self._items else None
                left = deadline - time.monotonic()
                if (best is not None and best[0] == stamp) or left <= 0 or \
                        (newest is not None and newest >= stamp):
                    return None if best is None else best[1]
                self._condition.wait(left)

    def _nearest(self, stamp: int, tolerance_ns: int) -> tuple[int, Item] | None:
        best: tuple[int, Item] | None = None
        for candidate in self._items:
            distance = abs(candidate[0] - stamp)
            if distance <= tolerance_ns and (best is None or distance < abs(best[0] - stamp)):
                best = candidate
        return best
