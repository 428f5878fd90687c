"""Rate-limit messages per key: one report per key and period, different keys each reported."""

from __future__ import annotations

from collections.abc import Callable, Hashable
import threading
import time


class KeyedThrottle:
    """Say whether a message under a key may go out now: at most once per ``period_s``.

    ``clock`` returns seconds (default :func:`time.monotonic`); tests pass a fake one.
    Thread-safe: the executor and the inference worker both report through one throttle.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> bool:
        """True (and note the time) when nothing under ``key`` went out within the period."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                return False
            self._last[key] = now
            return True
