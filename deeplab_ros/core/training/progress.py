"""A progress bar for training: tqdm when installed, plain stderr line updates otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class ProgressLine:
    """Rewrites one stderr line with ``step/total``, loss, speed and learning rate."""

    def __init__(self, total: int, *, initial: int = 0, description: str = 'train',
                 enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total = total
        self.count = initial
        self.description = description
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        self._start = time.perf_counter()
        self._start_count = initial
        self._last_print = 0.0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, initial=initial, desc=description,
                                 unit='step', file=self.stream, dynamic_ncols=True)

    def update(self, steps: int = 1, **values: float) -> None:
        """Advance by ``steps`` and show ``values`` (e.g. ``loss=0.31``, ``lr=0.01``)."""
        self.count += steps
        if not self.enabled:
            return
        shown = {key: f'{value:.4g}' for key, value in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(steps)
            return
        now = time.perf_counter()
        if now - self._last_print < 0.5 and self.count < self.total:
            return
        self._last_print = now
        rate = (self.count - self._start_count) / max(now - self._start, 1e-9)
        text = ' '.join(f'{key}={value}' for key, value in shown.items())
        self.stream.write(f'\r{self.description} {self.count}/{self.total} {text} '
                          f'{rate:.2f} step/s')
        self.stream.flush()

    def write(self, message: str) -> None:
        """Print a full line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            self.stream.write(('\n' if self.enabled else '') + message + '\n')
            self.stream.flush()

    def close(self) -> None:
        """Finish the bar (end the line)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self.stream.write('\n')
            self.stream.flush()
