"""Thread-safe counters, rates and latency percentiles for the node's diagnostics."""

from __future__ import annotations

from collections import deque
import threading
import time

import numpy as np


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        """Record one event."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-6)
            return len(self._times) / max(span, min(self._window, span))

    def recent(self, now: float | None = None) -> int:
        """How many events happened within the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._times)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()


class LatencyWindow:
    """The last N latencies (seconds), with percentiles."""

    def __init__(self, size: int = 500) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        """Record one latency."""
        with self._lock:
            self._values.append(seconds)

    def percentiles(self, *points: float) -> tuple[float, ...]:
        """Percentiles in milliseconds (NaN while empty)."""
        with self._lock:
            if not self._values:
                return tuple(float('nan') for _ in points)
            values = np.fromiter(self._values, dtype=np.float64)
        return tuple(float(v) * 1000.0 for v in np.percentile(values, points))


#: Bad inputs are reported on /diagnostics over this recent window (seconds).
BAD_INPUT_WINDOW_S = 10.0


class NodeStatistics:
    """Everything the node reports on /diagnostics."""

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.skipped = 0
        self.bad_inputs = 0
        self.camera_info_mismatches = 0
        self.recent_bad_inputs = RateMeter(window=BAD_INPUT_WINDOW_S)
        self.bad_depth = 0             # depth images of a wrong encoding, size or data
        self.bad_camera_info = 0       # depth frames without usable camera_info
        self.depth_unmatched = 0       # processed frames without a depth image in tolerance
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.inference = LatencyWindow()
        self.node_latency = LatencyWindow()      # receipt -> publish
        self.end_to_end = LatencyWindow()        # header stamp -> publish
        self._lock = threading.Lock()

    def count(self, field: str, amount: int = 1) -> None:
        """Increment a counter (received, processed, skipped, bad_inputs, bad_depth, ...)."""
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)

    def diagnostic_values(self) -> dict[str, object]:
        """The counters, rates and latency percentiles as /diagnostics key-values, formatted.

        Rates with two decimals, latencies in milliseconds with one; the caller adds what
        describes the model (device, weights, backend, ...).
        """
        inference = self.inference.percentiles(50, 99)
        node = self.node_latency.percentiles(50, 99)
        end_to_end = self.end_to_end.percentiles(50, 99)
        return {
            'input_rate_hz': f'{self.input_rate.rate():.2f}',
            'output_rate_hz': f'{self.output_rate.rate():.2f}',
            'frames_received': self.received,
            'frames_processed': self.processed,
            'frames_skipped': self.skipped,
            'bad_inputs': self.bad_inputs,
            'bad_inputs_recent': self.recent_bad_inputs.recent(),
            'camera_info_mismatches': self.camera_info_mismatches,
            'inference_ms_p50': f'{inference[0]:.1f}',
            'inference_ms_p99': f'{inference[1]:.1f}',
            'node_latency_ms_p50': f'{node[0]:.1f}',
            'node_latency_ms_p99': f'{node[1]:.1f}',
            'end_to_end_ms_p50': f'{end_to_end[0]:.1f}',
            'end_to_end_ms_p99': f'{end_to_end[1]:.1f}',
            'bad_depth': self.bad_depth,
            'bad_camera_info': self.bad_camera_info,
            'depth_unmatched': self.depth_unmatched,
        }
