"""``deeplab-ros-bench``: backends, and what pre/post-processing and the node add to the model.

    deeplab-ros-bench                                         # CPU/GPU auto, VGA, input 513
    deeplab-ros-bench --input-sizes 321,513 --resolutions vga,1080p --iterations 20
    deeplab-ros-bench --device cuda --backends torch --json bench.json

For every (frame resolution, input size) pair and every backend (``--backends``, default
``torch,onnxruntime`` where onnxruntime is installed) it times, after warm-up, the median of:

- ``model``: the bare network forward of the backend on a pre-made, normalised input tensor;
- ``segmenter``: the full per-frame path, RGB uint8 frame in -> uint8 labels out
  (upload, resize, normalise, pad, forward, crop, arg-max, resize back, class fractions);

and prints a table with their ratio and the pre/post-processing overhead in percent, then
how many times faster each backend is than the first one listed. All measurements of a case
(every backend's model and segmenter) alternate inside one loop so that load from other
processes affects them alike. Frames are a real photo resized to the resolution.

``--spatial`` (default on) also times the spatial outputs at VGA on a real RGB-D frame:
confidence, regions, back-projection, labelled cloud, 3D boxes and the node's whole step.

``--profile`` instead shows where the time goes, for the first input size and resolution:
the median of each stage of the segmenter (upload, preprocess, forward, postprocess,
download) per backend, and ONNX Runtime's own per-operator profile of its forward with the
layout reorders it inserted (``--profile-onnx`` adds other ONNX files, run in turn with it);
see :mod:`deeplab_ros.tools.bench_profile`.

``--upsample-compare`` (default on) times the whole segmenter with ``upsample: exact`` against
``upsample: dense`` (the network resizing its logits to its input, arg-max, nearest resize),
labels alone and with the confidence image, at
every resolution, in one interleaved loop, at the checkpoint's own input size and with the
node's backend (``--node-backend``), and prints how many times faster ``exact`` is.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import sys
from typing import Callable

import cv2
import numpy as np

from deeplab_ros.core.inference.backends import BACKENDS
from deeplab_ros.core.weights.checkpoint import DEFAULT_INPUT_SIZE
from deeplab_ros.tools.bench_tables import alternating_medians, text_table
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES
from deeplab_ros.tools.model_args import add_model_arguments, build_segmenter

RESOLUTIONS: dict[str, tuple[int, int]] = {  # name -> (width, height)
    'qvga': (320, 240),
    'vga': (640, 480),
    '720p': (1280, 720),
    '1080p': (1920, 1080),
}
PHOTO = 'data/photos/kite_and_cold.jpg'


@dataclass
class CoreTiming:
    """Median timings of one (resolution, input size) case, in milliseconds."""

    resolution: str
    width: int
    height: int
    input_size: int
    model_ms: float
    segmenter_ms: float
    backend: str = 'torch'

    @property
    def ratio(self) -> float:
        """Segmenter time over model time."""
        return self.segmenter_ms / self.model_ms

    @property
    def overhead_percent(self) -> float:
        """What pre/post-processing adds to the model's time, in percent."""
        return (self.ratio - 1.0) * 100.0

    def to_dict(self) -> dict:
        """Plain dict for JSON output (including the derived numbers)."""
        return {**asdict(self), 'ratio': round(self.ratio, 4),
                'overhead_percent': round(self.overhead_percent, 2)}


def _int_list(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(',') if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected comma-separated integers, got {text!r}') from None
    if not values:
        raise argparse.ArgumentTypeError('expected at least one value')
    return values


def _resolution_list(text: str) -> list[str]:
    names = [item.strip().lower() for item in text.split(',') if item.strip()]
    unknown = [name for name in names if name not in RESOLUTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f'unknown resolution(s) {unknown or text!r}; choose from {", ".join(RESOLUTIONS)}')
    return names


def _backend_list(text: str) -> list[str]:
    names = [item.strip().lower() for item in text.split(',') if item.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f'expected distinct backends from {", ".join(BACKENDS)}, got {text!r}')
    return names


def default_backends() -> list[str]:
    """Return the backends to measure: torch and onnxruntime, or torch alone without it."""
    from deeplab_ros.core.inference.backends import onnxruntime_available

    return ['torch', 'onnxruntime'] if onnxruntime_available() else ['torch']


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='deeplab-ros-bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, backend=False)
    parser.add_argument('--half', choices=('auto', 'on', 'off'), default='auto',
                        help='float16 on CUDA (auto: on for CUDA, off for CPU)')
    parser.add_argument('--input-sizes', type=_int_list, default=[DEFAULT_INPUT_SIZE],
                        help='comma-separated network input sides '
                             f'(default {DEFAULT_INPUT_SIZE})')
    parser.add_argument('--resolutions', type=_resolution_list, default=['vga'],
                        help=f'comma-separated frame sizes from {", ".join(RESOLUTIONS)} '
                             '(default vga)')
    parser.add_argument('--iterations', type=int, default=10,
                        help='timed iterations per case (median reported; default 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--json', type=Path, help='also write the results to this JSON file')
    parser.add_argument('--backends', type=_backend_list, default=None,
                        help='comma-separated backends to compare, the first is the reference '
                             '(default: torch,onnxruntime, or torch without onnxruntime)')
    parser.add_argument('--node-backend', default='auto', choices=BACKENDS,
                        help='backend of the node and of the segmenter it is compared with '
                             '(default auto, the node\'s default)')
    parser.add_argument('--node-frames', type=int, default=100,
                        help='frames per case through the node process (0 = skip the node '
                             'part; default 100)')
    parser.add_argument('--spatial', action=argparse.BooleanOptionalAction, default=True,
                        help='time the spatial outputs (cloud, regions, 3D boxes) at VGA on a '
                             'real RGB-D frame (default on)')
    parser.add_argument('--upsample-compare', action=argparse.BooleanOptionalAction,
                        default=True,
                        help='time the segmenter with upsample exact against dense at every '
                             "resolution, the checkpoint's input size (default on)")
    parser.add_argument('--node-block', type=int, default=10,
                        help='node frames per block; every block is followed by as many '
                             'frames through the segmenter in this process (default 10)')
    parser.add_argument('--against', type=Path, metavar='CHECKOUT',
                        help='also time this checkout\'s segmenter against the one of another '
                             'checkout of the package (e.g. a git worktree of an earlier '
                             'commit), each with its own defaults, in one interleaved loop at '
                             'every resolution (see deeplab_ros.tools.bench_against)')
    parser.add_argument('--profile', action='store_true',
                        help='only profile the first input size and resolution: stage times '
                             'of the segmenter per backend and ONNX Runtime\'s per-operator '
                             'times')
    parser.add_argument('--profile-onnx', type=Path, action='append', default=[],
                        metavar='FILE',
                        help='with --profile: another ONNX file (same input) whose operators '
                             'are profiled in turn with the current export (repeatable)')
    return parser


def bench_frame(width: int, height: int) -> np.ndarray:
    """A real photo from the shared data, resized to ``width`` x ``height`` (RGB uint8)."""
    from deeplab_ros.core.weights.locations import shared_path

    image = cv2.imread(str(shared_path(PHOTO)), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f'cannot decode {PHOTO} in the shared folder')
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized[..., ::-1])


def _build_segmenter(args: argparse.Namespace, input_size: int, backend: str):
    """The segmenter the command line asks for, at ``input_size``, with ``backend``."""
    return build_segmenter(args, input_size=input_size, backend=backend,
                           half=None if args.half == 'auto' else args.half == 'on')


def _synchronizer(segmenter) -> Callable[[], None]:
    """Waits for the segmenter's device to finish queued work (nothing to wait for on CPU)."""
    import torch

    if segmenter.device.type == 'cuda':
        return lambda: torch.cuda.synchronize(segmenter.device)
    return lambda: None


def run_core(args: argparse.Namespace) -> list[CoreTiming]:
    """Time the bare model against the full segmenter for every requested case."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    timings = []
    for input_size in args.input_sizes:
        segmenters = [_build_segmenter(args, input_size, backend) for backend in args.backends]
        synchronize = _synchronizer(segmenters[0])
        for name in args.resolutions:
            width, height = RESOLUTIONS[name]
            frame = bench_frame(width, height)
            functions: list[Callable[[], object]] = []
            for segmenter in segmenters:
                batch = segmenter.prepare_batch([frame])
                functions += [lambda s=segmenter, b=batch: s.forward_only(b),
                              lambda s=segmenter: s.segment(frame)]
            medians = alternating_medians(functions, iterations=args.iterations,
                                          warmup=args.warmup, synchronize=synchronize)
            for index, segmenter in enumerate(segmenters):
                timings.append(CoreTiming(name, width, height, input_size,
                                          medians[2 * index], medians[2 * index + 1],
                                          segmenter.describe_backend()))
        for segmenter in segmenters:
            segmenter.close()
    return timings


def run_profile_case(args: argparse.Namespace) -> dict:
    """``--profile``: the first input size and resolution, profiled stage by stage."""
    import torch

    from deeplab_ros.tools.bench_profile import run_profile

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    input_size, name = args.input_sizes[0], args.resolutions[0]
    segmenters = [_build_segmenter(args, input_size, backend) for backend in args.backends]
    frame = bench_frame(*RESOLUTIONS[name])
    print(f'weights: {args.weights}  device: {args.device}  torch threads: '
          f'{torch.get_num_threads()}  iterations: {args.iterations} (median)  '
          f'upsample: {args.upsample}  load average: '
          + ' '.join(f'{value:.2f}' for value in os.getloadavg()))
    try:
        report = run_profile(args, segmenters, frame, _synchronizer(segmenters[0]))
    finally:
        for segmenter in segmenters:
            segmenter.close()
    return {'weights': args.weights, 'device': args.device, 'resolution': name,
            'input_size': input_size, 'threads': torch.get_num_threads(),
            'load_average': os.getloadavg(), **report}


@dataclass
class UpsampleTiming:
    """Median segmenter times of one resolution with ``upsample: exact`` and ``dense``."""

    resolution: str
    width: int
    height: int
    input_size: int
    backend: str
    #: What the segmenter was asked for: ``labels``, or ``labels+confidence``.
    outputs: str
    exact_ms: float
    dense_ms: float

    @property
    def speedup(self) -> float:
        """How many times faster ``exact`` is than ``dense``."""
        return self.dense_ms / self.exact_ms

    def to_dict(self) -> dict:
        """Plain dict for JSON output (including the speed-up)."""
        return {**asdict(self), 'speedup': round(self.speedup, 4)}


def run_upsample_compare(args: argparse.Namespace) -> list[UpsampleTiming]:
    """The segmenter with ``upsample: exact`` and ``dense``, every resolution.

    Labels alone and with the confidence image: the four cases of a resolution in one loop.
    """
    modes = ('exact', 'dense')
    segmenters = [build_segmenter(args, upsample=mode, backend=args.node_backend,
                                  half=None if args.half == 'auto' else args.half == 'on')
                  for mode in modes]
    timings = []
    for name in args.resolutions:
        width, height = RESOLUTIONS[name]
        frame = bench_frame(width, height)
        medians = alternating_medians(
            [_segment_call(segmenter, frame, confidence)
             for confidence in (False, True) for segmenter in segmenters],
            iterations=args.iterations, warmup=args.warmup,
            synchronize=_synchronizer(segmenters[0]))
        for index, outputs in enumerate(('labels', 'labels+confidence')):
            exact_ms, dense_ms = medians[2 * index:2 * index + 2]
            timings.append(UpsampleTiming(name, width, height, segmenters[0].input_size,
                                          segmenters[0].describe_backend(), outputs,
                                          exact_ms, dense_ms))
    for segmenter in segmenters:
        segmenter.close()
    return timings


def format_upsample_table(timings: list[UpsampleTiming]) -> str:
    """Table of :func:`run_upsample_compare` (dense median / exact median)."""
    columns = [('frame', '<16'), ('input', '>5'), ('backend', '<18'), ('outputs', '<18'),
               ('exact ms', '>9.1f'), ('dense ms', '>9.1f'), ('exact x', '>8.3f')]
    return text_table(columns, [[f'{t.resolution} {t.width}x{t.height}', t.input_size,
                                 t.backend, t.outputs, t.exact_ms, t.dense_ms, t.speedup]
                                for t in timings])


def _segment_call(segmenter, frame: np.ndarray,
                  confidence: bool = False) -> Callable[[], None]:
    """One segmenter call on ``frame`` that returns once the device is done."""
    synchronize = _synchronizer(segmenter)

    def segment() -> None:
        segmenter.segment(frame, confidence=confidence)
        synchronize()
    return segment


def run_node(args: argparse.Namespace, timings: list[CoreTiming]) -> dict:
    """(c): every case through the node process, alternating with this process's segmenter."""
    from deeplab_ros.ros.dds_profile import describe_dds_env
    from deeplab_ros.tools.bench_node import format_node_table, run_node_case

    node_timings = []
    for input_size in dict.fromkeys(t.input_size for t in timings):
        segmenter = _build_segmenter(args, input_size, args.node_backend)
        cases = dict.fromkeys((t.resolution, t.width, t.height) for t in timings
                              if t.input_size == input_size)
        for resolution, width, height in cases:
            frame = bench_frame(width, height)
            node_timings.append(run_node_case(
                frame, resolution, input_size, frames=args.node_frames,
                segment=_segment_call(segmenter, frame), block_frames=args.node_block,
                weights=args.weights, device=args.device, backend=args.node_backend))
        node_backend = segmenter.describe_backend()
        segmenter.close()
    print(f'\nnode end to end with backend {args.node_backend} ({node_backend}; own process, '
          f'DDS, {describe_dds_env(os.environ)}; '
          f'{args.node_frames} frames per case in blocks of {args.node_block}, one frame waiting '
          'behind the one being inferred; every block followed by as many frames through the '
          'segmenter in this process):')
    print(format_node_table(node_timings))
    return {'node_backend': args.node_backend,
            'node': [t.to_dict() for t in node_timings],
            'node_over_segmenter': [round(t.ratio, 4) for t in node_timings],
            'node_block_frames': args.node_block}


def format_core_table(timings: list[CoreTiming]) -> str:
    """Human-readable table of the core timings."""
    columns = [('frame', '<16'), ('input', '>5'), ('backend', '<18'), ('model ms', '>9.1f'),
               ('segmenter ms', '>13.1f'), ('ratio', '>6.3f'), ('overhead %', '>10.1f')]
    return text_table(columns, [[f'{t.resolution} {t.width}x{t.height}', t.input_size,
                                 t.backend, t.model_ms, t.segmenter_ms, t.ratio,
                                 t.overhead_percent] for t in timings])


def backend_speedups(timings: list[CoreTiming]) -> list[dict]:
    """Per case, how many times faster each backend is than the first one timed."""
    rows = []
    for case in dict.fromkeys((t.resolution, t.input_size) for t in timings):
        same = [t for t in timings if (t.resolution, t.input_size) == case]
        reference = same[0]
        for other in same[1:]:
            rows.append({'resolution': case[0], 'input_size': case[1],
                         'backend': other.backend, 'reference': reference.backend,
                         'model_speedup': round(reference.model_ms / other.model_ms, 4),
                         'segmenter_speedup': round(reference.segmenter_ms /
                                                    other.segmenter_ms, 4)})
    return rows


def format_speedups(rows: list[dict]) -> str:
    """Table of :func:`backend_speedups` (reference time / backend time)."""
    columns = [('frame', '<8'), ('input', '>5'), ('backend', '<18'), ('vs', '<18'),
               ('model x', '>8.3f'), ('segmenter x', '>12.3f')]
    return text_table(columns, [[row['resolution'], row['input_size'], row['backend'],
                                 row['reference'], row['model_speedup'],
                                 row['segmenter_speedup']] for row in rows])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0 or args.node_block < 2:
        print('error: --iterations must be >= 1, --node-block >= 2 and --warmup >= 0',
              file=sys.stderr)
        return 2
    import torch

    args.backends = args.backends or default_backends()
    if args.profile:
        try:
            report = run_profile_case(args)
        except TOOL_FAILURES as error:
            return report_failure(parser.prog, error, parser)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + '\n')
            print(f'wrote {args.json}')
        return 0
    try:
        timings = run_core(args)
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    print(f'weights: {args.weights}  device: {args.device}  torch threads: '
          f'{torch.get_num_threads()}  iterations: {args.iterations} (median)  '
          f'upsample: {args.upsample}')
    print(format_core_table(timings))
    speedups = backend_speedups(timings)
    if speedups:
        print('\nbackend speed-up (reference median / backend median, same loop):')
        print(format_speedups(speedups))
    report = {'weights': args.weights, 'device': args.device, 'upsample': args.upsample,
              'torch': torch.__version__, 'threads': torch.get_num_threads(),
              'iterations': args.iterations, 'backends': args.backends,
              'core': [t.to_dict() for t in timings], 'backend_speedups': speedups}
    if args.upsample_compare:
        upsample = run_upsample_compare(args)
        print('\nsegmenter with upsample exact against dense (same loop, median ms; exact x = '
              'dense / exact):')
        print(format_upsample_table(upsample))
        report['upsample_compare'] = [t.to_dict() for t in upsample]
    if args.against:
        from deeplab_ros.tools.bench_against import (
            AgainstError, format_against_table, run_against)

        try:
            against = run_against(
                args.against, resolutions=args.resolutions,
                frames=[bench_frame(*RESOLUTIONS[name]) for name in args.resolutions],
                weights=args.weights, device=args.device, backend=args.node_backend,
                threads=args.threads, iterations=args.iterations, warmup=args.warmup)
        except AgainstError as error:
            return report_failure(parser.prog, error, parser)
        print(f'\nsegmenter here against {args.against} (worker processes, same loop, median '
              'ms; x = other / this):')
        print(format_against_table(against))
        report['against'] = {'checkout': str(args.against),
                             'timings': [t.to_dict() for t in against]}
    if args.spatial:
        from deeplab_ros.tools.bench_spatial import format_spatial_table, run_spatial

        segmenter = _build_segmenter(args, args.input_sizes[0], args.node_backend)
        spatial = run_spatial(segmenter, iterations=args.iterations, warmup=args.warmup)
        segmenter.close()
        print(f'\nspatial outputs at VGA (shared RGB-D frame 1, input {args.input_sizes[0]}, '
              'median ms):')
        print(format_spatial_table(spatial))
        report['spatial'] = [t.to_dict() for t in spatial]
    if args.node_frames > 0:
        report.update(run_node(args, timings))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
