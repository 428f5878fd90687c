"""``deeplab-ros-bench --against CHECKOUT``: this checkout's segmenter against another's.

Both segmenters run in worker processes of their own, started the same way (the same Python,
``PYTHONPATH`` naming one checkout or the other; the other checkout with a cache folder of its
own, so that neither reuses the other's ONNX exports) and driven over the same pipe: every
iteration asks each for one frame in turn, rotating the order, so load from elsewhere affects
both alike. Each builds its
segmenter with ``Segmenter.from_checkpoint(weights, device=..., backend=...)`` and its own
defaults for everything else (input size, output stride, upsampling): what that checkout does
for a user who sets nothing else. The other checkout needs that call in
``deeplab_ros.core.inference.segmenter`` and the segmenter's ``input_size``, ``device`` and
``describe_backend()``; an older one fails with "worker exited".

    git worktree add ../deeplab_ros_base <commit>      # the other checkout
    deeplab-ros-bench --against ../deeplab_ros_base --resolutions vga,1080p
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np

from deeplab_ros.core.weights.locations import CACHE_ENV, cache_dir
from deeplab_ros.tools.bench_tables import alternating_medians, text_table

#: The worker: builds one segmenter, says ``ready`` with what it runs (package folder, input
#: size, backend), then segments the frame each request names and answers ``ok``. Kept to the
#: API every version has.
WORKER = r'''
import json
import sys
import numpy as np
import torch
import deeplab_ros
from deeplab_ros.core.inference.segmenter import Segmenter
weights, device, backend, threads, *frame_files = sys.argv[1:]
if int(threads) > 0:
    torch.set_num_threads(int(threads))
frames = [np.load(path) for path in frame_files]
segmenter = Segmenter.from_checkpoint(weights, device=device, backend=backend)
print('ready', json.dumps({'package': deeplab_ros.__path__[0], 'input_size': segmenter.input_size,
                           'backend': segmenter.describe_backend()}), flush=True)
for line in sys.stdin:
    segmenter.segment(frames[int(line)])
    if segmenter.device.type == 'cuda':
        torch.cuda.synchronize(segmenter.device)
    print('ok', flush=True)
'''


class AgainstError(RuntimeError):
    """The other checkout cannot be benchmarked (not a checkout, worker failed)."""


@dataclass
class AgainstTiming:
    """Median segmenter times of one resolution here and in the other checkout."""

    resolution: str
    width: int
    height: int
    this_ms: float
    other_ms: float
    #: Each worker's ``package`` folder, ``input_size`` and ``backend``.
    this_setup: dict
    other_setup: dict

    @property
    def speedup(self) -> float:
        """How many times faster this checkout is than the other."""
        return self.other_ms / self.this_ms

    def to_dict(self) -> dict:
        """Plain dict for JSON output (including the speed-up)."""
        return {**asdict(self), 'speedup': round(self.speedup, 4)}


class SegmenterWorker:
    """A worker process segmenting frames with the package of one checkout."""

    def __init__(self, checkout: Path, frame_files: list[Path], *, weights: str, device: str,
                 backend: str, threads: int, cache: Path | None = None) -> None:
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [str(checkout)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
        if cache is not None:
            env[CACHE_ENV] = str(cache)
        self.checkout = checkout
        self._process = subprocess.Popen(
            [sys.executable, '-c', WORKER, weights, device, backend, str(threads),
             *map(str, frame_files)],
            env=env, cwd=tempfile.gettempdir(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        ready = self._read()
        if not ready.startswith('ready '):
            raise AgainstError(f'the segmenter of {checkout} did not start: {ready}')
        #: ``package`` (the folder imported), ``input_size`` and ``backend`` of the worker.
        self.setup: dict = json.loads(ready.split(' ', 1)[1])

    def _read(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line:
            self._process.wait(timeout=30)
            assert self._process.stderr is not None
            error = self._process.stderr.read().strip().splitlines()
            raise AgainstError(f'the worker for {self.checkout} exited '
                               f'({self._process.returncode}): '
                               f'{error[-1] if error else "no message"}')
        return line

    def segment(self, frame_index: int) -> None:
        """Segment one of the frames; returns when the worker has."""
        assert self._process.stdin is not None
        self._process.stdin.write(f'{frame_index}\n')
        self._process.stdin.flush()
        if self._read() != 'ok':
            raise AgainstError(f'the worker for {self.checkout} failed')

    def close(self) -> None:
        """End the worker."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def check_checkout(path: Path) -> Path:
    """``path`` resolved, if it holds the package's segmenter module.

    Raises:
        AgainstError: It does not.
    """
    path = path.expanduser().resolve()
    if not (path / 'deeplab_ros' / 'core' / 'inference' / 'segmenter.py').is_file():
        raise AgainstError(f'{path} is not a deeplab_ros checkout with '
                           'deeplab_ros/core/inference/segmenter.py')
    return path


def run_against(other: Path, *, resolutions: list[str], frames: list[np.ndarray],
                weights: str, device: str, backend: str, threads: int, iterations: int,
                warmup: int) -> list[AgainstTiming]:
    """Time this checkout's segmenter and ``other``'s on ``frames`` (one per resolution).

    Each iteration asks both workers for the frame in turn (see
    :func:`~deeplab_ros.tools.bench_tables.alternating_medians`).
    """
    this = Path(__file__).resolve().parents[2]
    other = check_checkout(other)
    with tempfile.TemporaryDirectory(prefix='deeplab_ros_against_') as folder:
        files = []
        for index, frame in enumerate(frames):
            files.append(Path(folder) / f'frame{index}.npy')
            np.save(files[-1], frame)
        # The other checkout gets a cache of its own, seeded with this one's converted
        # checkpoints but not its ONNX exports (an export of the same name may differ).
        other_cache = Path(folder) / 'other_cache'
        other_cache.mkdir()
        for checkpoint in cache_dir().glob('*.pt'):
            (other_cache / checkpoint.name).symlink_to(checkpoint)
        workers = []
        try:
            for checkout, cache in ((this, None), (other, other_cache)):
                workers.append(SegmenterWorker(checkout, files, weights=weights, device=device,
                                               backend=backend, threads=threads, cache=cache))
            timings = []
            for index, name in enumerate(resolutions):
                this_ms, other_ms = alternating_medians(
                    [lambda worker=worker, index=index: worker.segment(index)
                     for worker in workers],
                    iterations=iterations, warmup=warmup)
                height, width = frames[index].shape[:2]
                timings.append(AgainstTiming(name, width, height, this_ms, other_ms,
                                             workers[0].setup, workers[1].setup))
            return timings
        finally:
            for worker in workers:
                worker.close()


def format_against_table(timings: list[AgainstTiming]) -> str:
    """Table of :func:`run_against`."""
    columns = [('frame', '<16'), ('this ms', '>8.1f'), ('other ms', '>9.1f'), ('x', '>6.3f'),
               ('this', '<28'), ('other', '<28')]

    def setup(worker: dict) -> str:
        return f'input {worker["input_size"]}, {worker["backend"]}'
    return text_table(columns, [[f'{t.resolution} {t.width}x{t.height}', t.this_ms, t.other_ms,
                                 t.speedup, setup(t.this_setup), setup(t.other_setup)]
                                for t in timings])
