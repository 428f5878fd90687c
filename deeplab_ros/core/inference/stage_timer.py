"""Wall time of each stage of the segmenter's per-frame path, for profiling.

    timer = StageTimer(segmenter.device)
    segmenter.stage_timer = timer       # every segment call now adds to timer.samples_ms
    ...
    segmenter.stage_timer = None

A :class:`~deeplab_ros.core.inference.segmenter.Segmenter` with a timer calls :meth:`start`
when a batch begins and :meth:`mark` at the end of each stage (:data:`STAGES`); on CUDA each
mark first waits for the device, so queued work counts in the stage that queued it (which
also removes the overlap of stages, so the sum exceeds an untimed call's time a little).
"""

from __future__ import annotations

import statistics
import time

import torch

#: The stages in the order a segment call runs them.
STAGES = ('upload', 'preprocess', 'forward', 'postprocess', 'download')


class StageTimer:
    """Records the wall time of every stage of each call made while it is attached."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        #: Milliseconds of each stage, one entry per call.
        self.samples_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self._last = 0.0

    def _now(self) -> float:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        """A call begins: its first mark measures from here."""
        self._last = self._now()

    def mark(self, stage: str) -> None:
        """``stage`` (one of :data:`STAGES`) ended: record the time since the last mark."""
        now = self._now()
        self.samples_ms[stage].append((now - self._last) * 1000.0)
        self._last = now

    def medians_ms(self) -> dict[str, float]:
        """Median milliseconds of every stage recorded so far (stages never run: 0)."""
        return {stage: statistics.median(values) if values else 0.0
                for stage, values in self.samples_ms.items()}


class _NoStageTimer:
    """Stands in for a timer when none is attached: every call does nothing."""

    def start(self) -> None:
        """Do nothing."""

    def mark(self, stage: str) -> None:
        """Do nothing."""


#: What a segmenter without a timer calls.
NO_STAGE_TIMER = _NoStageTimer()
