"""Newest-frame scheduling: one waiting frame per stream, taken at most at a target rate.

Frames are never queued. Each stream (a camera) holds at most one waiting frame; a newer frame
replaces it (:meth:`~NewestFrameScheduler.offer` says so, for the caller to count). A consumer
(the inference worker) takes the waiting frames of every stream that is due, as one batch. With
a target rate ``r > 0`` a stream is due once every ``1 / r`` seconds on a fixed grid (taking a
frame late does not shift the following ones, so the average rate stays ``r``); with ``r = 0``
as fast as frames come.
If a stream was not taken for a whole period or more (no frames, slow inference, a rate
change), its grid restarts at the frame taken.

The clock is injectable (``time.monotonic`` by default), so the pacing is testable on a fake
clock through :meth:`take_ready` and :meth:`seconds_until_due`; :meth:`next_batch` is the
blocking form for a worker thread.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Generic, Hashable, TypeVar

StreamT = TypeVar('StreamT', bound=Hashable)
FrameT = TypeVar('FrameT')

#: How long :meth:`NewestFrameScheduler.next_batch` sleeps between checks with nothing waiting
#: (it is also woken at once by a new frame or :meth:`~NewestFrameScheduler.stop`).
IDLE_WAIT_S = 0.5


class NewestFrameScheduler(Generic[StreamT, FrameT]):
    """Keeps the newest frame of each stream and hands out the due ones, paced to a rate.

    Args:
        target_rate: Frames per second per stream (0 = every frame the consumer can take),
            or a callable read at every decision (a rate that may change while running).
        clock: Seconds on a monotonic clock.
    """

    def __init__(self, target_rate: float | Callable[[], float] = 0.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = target_rate if callable(target_rate) else (lambda: float(target_rate))
        self._clock = clock
        self._condition = threading.Condition()
        self._pending: dict[StreamT, FrameT] = {}
        self._slot: dict[StreamT, float] = {}  # grid time of each stream's last taken frame
        self._running = False

    # ---------------------------------------------------------------- producer side
    def offer(self, stream: StreamT, frame: FrameT) -> bool:
        """Make ``frame`` the waiting frame of ``stream``; True when it replaced (dropped) one."""
        with self._condition:
            replaced = stream in self._pending
            self._pending[stream] = frame
            self._condition.notify()
        return replaced

    def clear(self) -> None:
        """Forget the waiting frames (not reported as replaced); the pacing grid is kept."""
        with self._condition:
            self._pending.clear()

    def reset(self) -> None:
        """Forget the waiting frames and the pacing of every stream (a new set of streams)."""
        with self._condition:
            self._pending.clear()
            self._slot.clear()

    # ---------------------------------------------------------------- consumer side
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def start(self) -> None:
        """Let :meth:`next_batch` hand out frames."""
        with self._condition:
            self._running = True

    def stop(self) -> None:
        """Make :meth:`next_batch` return None (at once, also when it is waiting)."""
        with self._condition:
            self._running = False
            self._condition.notify_all()

    def _period(self) -> float:
        rate = self._rate()
        return 1.0 / rate if rate > 0 else 0.0

    def _due(self, stream: StreamT, period: float) -> float:
        slot = self._slot.get(stream)
        return float('-inf') if slot is None else slot + period

    def take_ready(self) -> list[tuple[StreamT, FrameT]]:
        """The waiting frames of every due stream (in offer order), removed from their slots."""
        with self._condition:
            now, period = self._clock(), self._period()
            ready = [stream for stream in self._pending if now >= self._due(stream, period)]
            for stream in ready:
                due = self._due(stream, period)
                # On the grid unless a whole period (or more) was missed: then restart it.
                self._slot[stream] = due if now - due < period else now
            return [(stream, self._pending.pop(stream)) for stream in ready]

    def seconds_until_due(self) -> float | None:
        """Seconds until the first waiting frame is due (0 = now); None with none waiting."""
        with self._condition:
            if not self._pending:
                return None
            now, period = self._clock(), self._period()
            return max(0.0, min(self._due(stream, period) - now for stream in self._pending))

    def next_batch(self) -> list[tuple[StreamT, FrameT]] | None:
        """Wait for due frames and take them; None once stopped."""
        with self._condition:
            while self._running:
                batch = self.take_ready()
                if batch:
                    return batch
                wait = self.seconds_until_due()
                self._condition.wait(timeout=IDLE_WAIT_S if wait is None else wait)
            return None
