"""The GPU check: float16 CUDA labels against float32 CPU labels, and timings, per backend.

It runs from the folder ``make gpu-check-bundle`` prepares
(:mod:`deeplab_ros.tools.gpu_check_bundle`), as ``run.py`` there, and needs nothing but
Python 3.10-3.12 with torch and numpy (no ROS, no OpenCV, no network)::

    python3 gpu_check_bundle/run.py [--device auto|cuda|cpu] [--out gpu_check.json]

Checks, each the fraction of a photo's pixels whose labels are identical, at least
:data:`AGREEMENT` for every photo and every pretrained model:

- ``fp16`` (CUDA only): the torch backend in float16 on CUDA against float32 on the CPU,
  both at the model's CUDA input size and output stride.
- ``reference``: float32 torch on the CPU, at the settings the bundle recorded, against the
  labels its builder computed the same way: the bundle (package, checkpoints, photos)
  reproduces what it was built from, on this machine's torch and CPU.
- ``batch``: the photos (of different sizes) segmented in one batch against one at a time,
  on the device checked (float16 on CUDA).
- ``onnxruntime``: where ONNX Runtime is installed, its labels on the device checked against
  float32 torch on the CPU at the same settings, for the timed models.

On the CPU (``--device cpu``) there is no float16 path: ``reference`` and ``batch`` are what
it compares there.

Timings: :meth:`Segmenter.segment_batch` from host frames to host labels, per backend
(torch; ONNX Runtime when installed, on CUDA with its TensorRT or CUDA provider), at VGA and
1080p, with batches of 1 and 4 frames, at the device's recommended settings. The frames are
the bundle's photos resized to those resolutions.

The result is one JSON file and a Markdown table beside it (same name, ``.md``), also
printed. Exit status: 0 when every check passed, 1 when one failed, 2 when the bundle is
incomplete or the device missing.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
import datetime
import gzip
import hashlib
import json
import os
from pathlib import Path
import platform
import sys
import tempfile
import time
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import deeplab_ros
from deeplab_ros.core import Segmenter
from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.inference.device import resolve_device
from deeplab_ros.core.weights.locations import CACHE_ENV

#: The least fraction of identical labels per photo.
AGREEMENT = 0.995
#: Photos per batch in the ``batch`` check and in the batched timings.
BATCH = 4
#: Frame sizes timed (width, height).
RESOLUTIONS = {'vga': (640, 480), '1080p': (1920, 1080)}
BACKENDS = ('torch', 'onnxruntime')
#: Packages the check must not need; whether each was imported is reported.
WATCHED_MODULES = ('cv2', 'yaml', 'PIL', 'torchvision', 'onnx', 'onnxruntime', 'tflite',
                   'rclpy')
MANIFEST = 'manifest.json'
#: Version of the bundle layout this check reads (``manifest.json``'s ``format``).
BUNDLE_FORMAT = 1
#: Timed iterations per case by default, after one warm-up call.
DEFAULT_ITERATIONS = {'cuda': 30, 'cpu': 3}


class BundleError(Exception):
    """The bundle folder is incomplete or damaged."""


@dataclass(frozen=True)
class BundleModel:
    """A pretrained model of the bundle: its checkpoint and reference settings."""

    name: str
    checkpoint: str
    sha256: str
    input_size: int
    output_stride: int
    references: str


@dataclass
class Bundle:
    """What the bundle's manifest lists, with the photos loaded."""

    folder: Path
    manifest: dict[str, Any]
    models: list[BundleModel]
    photos: dict[str, np.ndarray]

    @classmethod
    def load(cls, folder: Path) -> 'Bundle':
        """Read ``folder``'s manifest and photos.

        Raises:
            BundleError: the manifest or a photo is missing or unreadable.
        """
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as error:
            raise BundleError(f'no readable {MANIFEST} in {folder}: {error}') from error
        if manifest.get('format') != BUNDLE_FORMAT:
            raise BundleError(f'{folder / MANIFEST} has format {manifest.get("format")!r}; '
                              f'this check reads format {BUNDLE_FORMAT}')
        models = [BundleModel(**entry) for entry in manifest['models']]
        photos = {}
        for entry in manifest['photos']:
            try:
                photos[entry['name']] = np.load(folder / entry['file'], allow_pickle=False)
            except (OSError, ValueError) as error:
                raise BundleError(f'cannot read the photo {entry["file"]}: {error}') from error
        return cls(folder, manifest, models, photos)

    def checkpoint(self, model: BundleModel, into: Path) -> Path:
        """Decompress ``model``'s checkpoint into the folder ``into``; checks its sha256.

        Raises:
            BundleError: the file is missing or not the one the bundle was built with.
        """
        target = into / f'{model.name}.pt'
        digest = hashlib.sha256()
        try:
            with gzip.open(self.folder / model.checkpoint, 'rb') as source, \
                    target.open('wb') as sink:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    sink.write(chunk)
        except OSError as error:
            raise BundleError(f'cannot read {model.checkpoint}: {error}') from error
        if digest.hexdigest() != model.sha256:
            raise BundleError(f'{model.checkpoint} is not the checkpoint the bundle was built '
                              f'with (sha256 {digest.hexdigest()}, expected {model.sha256})')
        return target

    def references(self, model: BundleModel) -> dict[str, np.ndarray]:
        """The labels of every photo computed by the bundle's builder for ``model``."""
        try:
            with np.load(self.folder / model.references, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError) as error:
            raise BundleError(f'cannot read {model.references}: {error}') from error


def agreement(labels: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of pixels with the same label (0 when the shapes differ)."""
    if labels.shape != reference.shape:
        return 0.0
    return float((labels == reference).mean())


def _settings(segmenter: Segmenter) -> dict[str, Any]:
    return {'input_size': segmenter.input_size,
            'output_stride': segmenter.metadata.output_stride,
            'backend': segmenter.describe_backend()}


class Check:
    """Runs the checks and timings and collects their results."""

    def __init__(self, bundle: Bundle, device: torch.device, work: Path, *,
                 iterations: int) -> None:
        self.bundle = bundle
        self.device = device
        self.work = work
        self.iterations = iterations
        self.agreement: list[dict[str, Any]] = []
        self.timings: list[dict[str, Any]] = []
        self.unavailable: list[dict[str, str]] = []
        self._paths: dict[str, Path] = {}
        self._cpu_labels: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}

    def path(self, model: BundleModel) -> Path:
        """The decompressed checkpoint of ``model`` (decompressed on first use)."""
        if model.name not in self._paths:
            self._paths[model.name] = self.bundle.checkpoint(model, self.work)
        return self._paths[model.name]

    def record(self, check: str, model: BundleModel, photo: str, value: float,
               settings: dict[str, Any]) -> None:
        """Keep one agreement figure."""
        self.agreement.append({'check': check, 'model': model.name, 'photo': photo,
                               'agreement': value, 'passed': value >= AGREEMENT,
                               **settings})

    def cpu_labels(self, model: BundleModel, input_size: int,
                   output_stride: int) -> dict[str, np.ndarray]:
        """Every photo's labels by float32 torch on the CPU at these settings (kept)."""
        key = (model.name, input_size, output_stride)
        if key not in self._cpu_labels:
            segmenter = Segmenter.from_checkpoint(
                self.path(model), device='cpu', backend='torch', input_size=input_size,
                output_stride=output_stride)
            try:
                self._cpu_labels[key] = {name: segmenter.segment(photo).labels
                                         for name, photo in self.bundle.photos.items()}
            finally:
                segmenter.close()
        return self._cpu_labels[key]

    def compare(self, check: str, model: BundleModel, segmenter: Segmenter,
                reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Record ``segmenter``'s labels of each photo against ``reference``; return them."""
        labels = {name: segmenter.segment(photo).labels
                  for name, photo in self.bundle.photos.items()}
        for name, value in labels.items():
            self.record(check, model, name, agreement(value, reference[name]),
                        _settings(segmenter))
        return labels

    def check_model(self, model: BundleModel) -> None:
        """The ``reference``, ``fp16`` and ``batch`` checks of one model."""
        stored = self.bundle.references(model)
        reference = self.cpu_labels(model, model.input_size, model.output_stride)
        settings = {'input_size': model.input_size, 'output_stride': model.output_stride,
                    'backend': 'torch'}
        for name, labels in reference.items():
            self.record('reference', model, name, agreement(labels, stored[name]), settings)
        on_cuda = self.device.type == 'cuda'
        segmenter = Segmenter.from_checkpoint(self.path(model), device=self.device,
                                              backend='torch', half=on_cuda or None)
        try:
            if on_cuda:
                single = self.compare('fp16', model, segmenter, self.cpu_labels(
                    model, segmenter.input_size, segmenter.metadata.output_stride))
            else:
                single = self.cpu_labels(model, segmenter.input_size,
                                         segmenter.metadata.output_stride)
            names = list(self.bundle.photos)[:BATCH]
            results = segmenter.segment_batch([self.bundle.photos[name] for name in names])
            for name, result in zip(names, results):
                self.record('batch', model, name, agreement(result.labels, single[name]),
                            {**_settings(segmenter), 'batch': len(names)})
        finally:
            segmenter.close()

    def time_model(self, model: BundleModel) -> None:
        """Timings of every backend available here, and the ``onnxruntime`` check.

        A backend that is not installed, or fails (ONNX Runtime's providers depend on the
        CUDA libraries found at run time), is reported in :attr:`unavailable`; the torch
        backend's failures end the run.
        """
        frames = {resolution: [_resized(photo, size) for photo in
                               list(self.bundle.photos.values())[:BATCH]]
                  for resolution, size in RESOLUTIONS.items()}
        for backend in BACKENDS:
            for batch in (1, BATCH):
                try:
                    self.time_backend(model, backend, batch, frames)
                except ConfigurationError as error:  # not installed here
                    self.unavailable.append({'model': model.name, 'backend': backend,
                                             'reason': str(error)})
                    break
                except Exception as error:  # noqa: BLE001 - reported, see the docstring
                    if backend == 'torch':
                        raise
                    self.unavailable.append({'model': model.name, 'backend': backend,
                                             'reason': f'{type(error).__name__}: {error}'})
                    break

    def time_backend(self, model: BundleModel, backend: str, batch: int,
                     frames: dict[str, list[np.ndarray]]) -> None:
        """Time ``model`` with ``backend`` on batches of ``batch`` of each resolution's frames."""
        segmenter = Segmenter.from_checkpoint(self.path(model), device=self.device,
                                              backend=backend, batch_size=batch)
        try:
            if backend != 'torch' and batch == 1:
                self.compare(backend, model, segmenter, self.cpu_labels(
                    model, segmenter.input_size, segmenter.metadata.output_stride))
            for resolution, images in frames.items():
                self.timings.append({
                    'model': model.name, **_settings(segmenter), 'resolution': resolution,
                    'width': images[0].shape[1], 'height': images[0].shape[0],
                    'batch': batch, **self.measure(segmenter, images[:batch])})
        finally:
            segmenter.close()

    def measure(self, segmenter: Segmenter, frames: Sequence[np.ndarray]) -> dict[str, Any]:
        """Time ``segment_batch(frames)``: one warm-up call, then the timed iterations."""
        segmenter.segment_batch(frames)
        seconds = []
        for _ in range(self.iterations):
            start = time.perf_counter()
            segmenter.segment_batch(frames)
            seconds.append(time.perf_counter() - start)
        milliseconds = np.array(seconds) * 1000.0
        median = float(np.median(milliseconds))
        return {'iterations': self.iterations, 'ms_median': median,
                'ms_p90': float(np.percentile(milliseconds, 90)),
                'ms_min': float(milliseconds.min()),
                'frames_per_s': len(frames) * 1000.0 / median}


def _resized(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``photo`` (HxWx3 uint8) resized to ``size`` = (width, height), bilinear."""
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    image = F.interpolate(image, size=(size[1], size[0]), mode='bilinear',
                          align_corners=False, antialias=True)
    return image[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy().copy()


def _device_report(device: torch.device) -> dict[str, Any]:
    report: dict[str, Any] = {
        'type': device.type, 'torch': torch.__version__, 'numpy': np.__version__,
        'python': platform.python_version(), 'platform': platform.platform(),
        'cpu_threads': torch.get_num_threads()}
    if device.type == 'cuda':
        report.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                      cudnn=torch.backends.cudnn.version())
    else:
        report.update(name=_cpu_name())
    return report


def _cpu_name() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _percent(value: float | None) -> str:
    return '-' if value is None else f'{100.0 * value:.2f} %'


def table(result: dict[str, Any]) -> str:
    """The result as Markdown: lowest agreement per model and check, then the timings."""
    device = result['device']
    lines = [f'# GPU check, {result["date"]}: {device["name"]} ({device["type"]}), '
             f'torch {device["torch"]}' + (f', CUDA {device["cuda"]}'
                                           if device.get('cuda') else ''), '',
             f'{"PASSED" if result["passed"] else "FAILED"}: identical labels on at least '
             f'{_percent(result["threshold"])} of the pixels of every photo '
             f'({len(result["photos"])} photos).', '',
             'Lowest agreement over the photos:', '']
    checks = sorted({row['check'] for row in result['agreement']},
                    key=['fp16', 'reference', 'batch', *BACKENDS].index)
    lines += ['| model | ' + ' | '.join(checks) + ' |',
              '|---|' + '---|' * len(checks)]
    for model in result['models']:
        lows = [min((row['agreement'] for row in result['agreement']
                     if row['model'] == model and row['check'] == check), default=None)
                for check in checks]
        lines.append(f'| {model} | ' + ' | '.join(_percent(low) for low in lows) + ' |')
    if result['timings']:
        lines += ['', 'segment_batch, host frames to host labels: median ms per call '
                  '(frames per second)', '',
                  '| model | backend | input | resolution | batch 1 | batch 4 |',
                  '|---|---|---|---|---|---|']
        cases = dict.fromkeys((row['model'], row['backend'], row['input_size'],
                               row['output_stride'], row['resolution'])
                              for row in result['timings'])
        for model, backend, size, stride, resolution in cases:
            cells = []
            for batch in (1, BATCH):
                found = [row for row in result['timings']
                         if (row['model'], row['backend'], row['resolution'], row['batch'])
                         == (model, backend, resolution, batch)]
                cells.append(f'{found[0]["ms_median"]:.1f} ({found[0]["frames_per_s"]:.1f})'
                             if found else '-')
            width, height = RESOLUTIONS[resolution]
            lines.append(f'| {model} | {backend} | {size}, OS {stride} | {resolution} '
                         f'{width}x{height} | ' + ' | '.join(cells) + ' |')
    for row in result['unavailable']:
        lines += ['', f'{row["backend"]} not timed ({row["model"]}): {row["reason"]}']
    if result['failures']:
        lines += ['', 'Failures:', ''] + [f'- {failure}' for failure in result['failures']]
    return '\n'.join(lines) + '\n'


@contextlib.contextmanager
def _cache_in(folder: Path) -> Iterator[None]:
    """ONNX exports and TensorRT engines go to ``folder``, not the user's cache, meanwhile."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[CACHE_ENV]
        else:
            os.environ[CACHE_ENV] = previous


def run(bundle: Bundle, device: torch.device, *, iterations: int, models: Sequence[str],
        timed: Sequence[str]) -> dict[str, Any]:
    """Run every check and timing; the result as JSON-ready data."""
    started = time.perf_counter()
    chosen = [model for model in bundle.models if model.name in models]
    with tempfile.TemporaryDirectory(prefix='deeplab_ros_gpu_check_') as work, \
            _cache_in(Path(work) / 'cache'):
        check = Check(bundle, device, Path(work), iterations=iterations)
        for model in chosen:
            print(f'checking {model.name}', file=sys.stderr, flush=True)
            check.check_model(model)
        for model in bundle.models:
            if model.name in timed:
                print(f'timing {model.name}', file=sys.stderr, flush=True)
                check.time_model(model)
    failures = [f'{row["check"]} {row["model"]} {row["photo"]}: '
                f'{_percent(row["agreement"])} < {_percent(AGREEMENT)}'
                for row in check.agreement if not row['passed']]
    package = Path(deeplab_ros.__file__).resolve().parent
    return {
        'format': 1,
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'passed': not failures, 'failures': failures, 'threshold': AGREEMENT,
        'device': _device_report(device),
        'package': {'path': str(package), 'version': deeplab_ros.__version__,
                    'in_bundle': package.is_relative_to(bundle.folder.resolve())},
        'modules': {name: name in sys.modules for name in WATCHED_MODULES},
        'bundle': {key: bundle.manifest.get(key) for key in ('built', 'commit', 'torch')},
        'models': [model.name for model in chosen], 'photos': list(bundle.photos),
        'agreement': check.agreement, 'timings': check.timings,
        'unavailable': check.unavailable,
        'seconds': round(time.perf_counter() - started, 1)}


def _names(text: str, known: Sequence[str], default: Sequence[str]) -> list[str]:
    if text == 'all':
        return list(known)
    if text == 'none':
        return []
    names = [name for name in text.split(',') if name] if text else list(default)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f'unknown model(s) {", ".join(unknown)}; known: {", ".join(known)}')
    return names


def _failed(error: Exception) -> int:
    print(f'gpu_check: error: {error}', file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the check, write the JSON and the table, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=('auto', 'cuda', 'cpu'), default='auto',
                        help='device checked (default auto: cuda when available, else cpu)')
    parser.add_argument('--out', type=Path, default=Path('gpu_check.json'),
                        help='result file (JSON; the table goes beside it as .md)')
    parser.add_argument('--bundle', type=Path, default=Path(__file__).resolve().parent,
                        help='the bundle folder (default: the folder of this script)')
    parser.add_argument('--iterations', type=int, default=0,
                        help='timed calls per case (default: 30 on CUDA, 3 on the CPU)')
    parser.add_argument('--models', default='all',
                        help='models checked: all (default) or NAME,NAME')
    parser.add_argument('--timing-models', default='',
                        help='models timed: the bundle\'s default model (default), all, '
                             'none or NAME,NAME')
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
        bundle = Bundle.load(args.bundle.resolve())
    except (BundleError, ConfigurationError) as error:
        return _failed(error)
    known = [model.name for model in bundle.models]
    try:
        models = _names(args.models, known, known)
        timed = _names(args.timing_models, known, [bundle.manifest['default_model']])
    except ValueError as error:
        parser.error(str(error))
    iterations = args.iterations or DEFAULT_ITERATIONS[device.type]
    try:
        result = run(bundle, device, iterations=iterations, models=models, timed=timed)
    except (BundleError, ConfigurationError) as error:
        return _failed(error)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + '\n')
    text = table(result)
    args.out.with_suffix('.md').write_text(text)
    print(text)
    print(f'wrote {args.out} and {args.out.with_suffix(".md")}')
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
