"""The timing loop and the text tables that ``deeplab-ros-bench`` and its parts share.

Kept apart from :mod:`deeplab_ros.tools.bench` so that the modules it drives
(:mod:`~deeplab_ros.tools.bench_profile`, :mod:`~deeplab_ros.tools.bench_against`,
:mod:`~deeplab_ros.tools.bench_spatial`) need not import it back.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence


def no_synchronize() -> None:
    """Nothing to wait for: work that has finished when its call returns."""


def alternating_medians(functions: Sequence[Callable[[], object]], *, iterations: int,
                        warmup: int,
                        synchronize: Callable[[], None] = no_synchronize) -> list[float]:
    """Median milliseconds of each callable, all timed in turn after ``warmup`` rounds.

    The order rotates from one iteration to the next, so none always runs first (after an
    idle moment) or right after a particular other one. ``synchronize`` runs after each call,
    inside its time (e.g. waiting for a CUDA device).
    """
    for _ in range(warmup):
        for function in functions:
            function()
    synchronize()
    times: list[list[float]] = [[] for _ in functions]
    for iteration in range(iterations):
        for offset in range(len(functions)):
            index = (iteration + offset) % len(functions)
            start = time.perf_counter()
            functions[index]()
            synchronize()
            times[index].append((time.perf_counter() - start) * 1000.0)
    return [statistics.median(values) for values in times]


def text_table(columns: list[tuple[str, str]], rows: list[list]) -> str:
    """Format ``rows`` under ``columns`` = ``[(title, format spec), ...]`` as aligned text.

    A spec is a format spec such as ``'<16'`` or ``'>9.1f'``; the title takes its alignment
    and width.
    """
    def title_spec(spec: str) -> str:
        return spec.split('.')[0].rstrip('fdsx%')

    lines = [' '.join(f'{title:{title_spec(spec)}}' for title, spec in columns)]
    lines += [' '.join(f'{value:{spec}}' for value, (_, spec) in zip(row, columns))
              for row in rows]
    return '\n'.join(lines)
