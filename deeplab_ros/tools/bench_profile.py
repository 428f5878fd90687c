"""``deeplab-ros-bench --profile``: where a frame's time goes, by stage and by operator.

- stages: the median milliseconds of each stage of the segmenter's per-frame path (upload,
  preprocess, forward, postprocess, download; see
  :mod:`~deeplab_ros.core.inference.stage_timer`), every backend's segmenter timed in turn in
  one loop;
- operators: ONNX Runtime's own profiler on the forward of the ``onnxruntime`` backend (and on
  any ``--profile-onnx`` file, for comparing graphs, run in turn with it): milliseconds per
  run by operator type (median over runs) and their share;
- layout reorders: the ``ReorderInput``/``ReorderOutput`` nodes ONNX Runtime's CPU provider
  inserts around operators it cannot run in its blocked (NCHWc) layout, each with its time and
  the operators it sits between (read from the graph as ONNX Runtime rewrote it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
import json
from pathlib import Path
import statistics
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from deeplab_ros.core.inference.stage_timer import STAGES, StageTimer
from deeplab_ros.tools.bench_tables import alternating_medians, text_table

REORDER_OPS = ('ReorderInput', 'ReorderOutput')


@dataclass
class StageProfile:
    """Median milliseconds of each stage of one segmenter, and of its whole call."""

    name: str
    stages_ms: dict[str, float]
    call_ms: float


@dataclass
class Reorder:
    """One layout reorder ONNX Runtime inserted: its node, time and neighbours."""

    node: str
    op_type: str
    channels: str  # of the NCHW side, when the graph says (ReorderOutput)
    ms: float
    source: str    # the operator whose output it reorders
    targets: str   # the operators that read its output


@dataclass
class OperatorProfile:
    """ONNX Runtime's per-run operator times of one graph (medians over the runs)."""

    name: str
    runs: int
    by_type_ms: dict[str, float]
    run_ms: float  # median of the whole run as ONNX Runtime timed it
    reorders: list[Reorder] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        """Sum of the operator medians."""
        return sum(self.by_type_ms.values())


def profile_stages(named: Sequence[tuple[str, Any]], frame: np.ndarray, *, iterations: int,
                   warmup: int, synchronize: Callable[[], None]) -> list[StageProfile]:
    """Stage medians of every ``(name, segmenter)`` on ``frame``, all timed in turn."""
    segmenters = [segmenter for _, segmenter in named]
    calls: list[Callable[[], object]] = [
        lambda s=segmenter: s.segment(frame) for segmenter in segmenters]
    alternating_medians(calls, iterations=warmup, warmup=0, synchronize=synchronize)
    timers = [StageTimer(segmenter.device) for segmenter in segmenters]
    for segmenter, timer in zip(segmenters, timers):
        segmenter.stage_timer = timer
    try:
        call_ms = alternating_medians(calls, iterations=iterations, warmup=0,
                                      synchronize=synchronize)
    finally:
        for segmenter in segmenters:
            segmenter.stage_timer = None
    return [StageProfile(name, timer.medians_ms(), total)
            for (name, _), timer, total in zip(named, timers, call_ms)]


def format_stage_table(profiles: list[StageProfile]) -> str:
    """Stages as rows, one column of medians per profiled segmenter."""
    columns = [('stage', '<12')] + [(profile.name, '>18.2f') for profile in profiles]
    rows: list[list] = [[stage] + [profile.stages_ms[stage] for profile in profiles]
                        for stage in STAGES]
    rows.append(['sum'] + [sum(profile.stages_ms.values()) for profile in profiles])
    rows.append(['whole call'] + [profile.call_ms for profile in profiles])
    return text_table(columns, rows)


def _run_windows(events: list[dict]) -> list[tuple[float, float]]:
    """(start, end) in microseconds of every ``model_run`` in a profile, in order."""
    return sorted((event['ts'], event['ts'] + event['dur']) for event in events
                  if event.get('cat') == 'Session' and event.get('name') == 'model_run')


def parse_ort_profile(events: list[dict], *, skip_runs: int = 0
                      ) -> tuple[list[dict[str, float]], list[dict[str, float]], list[float]]:
    """Per run: milliseconds by operator type and by node, and the run's own time.

    ``events`` is ONNX Runtime's profile (its JSON list); the first ``skip_runs`` runs
    (warm-up) are left out. A node's kernel time counts in the run whose window holds it.
    """
    windows = _run_windows(events)
    by_type: list[dict[str, float]] = [defaultdict(float) for _ in windows]
    by_node: list[dict[str, float]] = [defaultdict(float) for _ in windows]
    starts = [start for start, _ in windows]
    for event in events:
        if event.get('cat') != 'Node' or not event.get('name', '').endswith('_kernel_time'):
            continue
        index = int(np.searchsorted(starts, event['ts'], side='right')) - 1
        if index < 0 or event['ts'] > windows[index][1]:
            continue
        ms = event['dur'] / 1000.0
        by_type[index][event['args']['op_name']] += ms
        by_node[index][event['name'][:-len('_kernel_time')]] += ms
    runs_ms = [(end - start) / 1000.0 for start, end in windows]
    return by_type[skip_runs:], by_node[skip_runs:], runs_ms[skip_runs:]


def _medians(per_run: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(key for run in per_run for key in run)
    return {key: statistics.median(run.get(key, 0.0) for run in per_run) for key in keys}


def graph_reorders(optimized_path: Path, node_ms: dict[str, float]) -> list[Reorder]:
    """The layout reorders in an optimised graph, with their times and neighbours."""
    import onnx

    graph = onnx.load(str(optimized_path), load_external_data=False).graph
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    outputs = {output.name for output in graph.output}
    reorders = []
    for node in graph.node:
        if node.op_type not in REORDER_OPS:
            continue
        channels = next((str(attribute.i) for attribute in node.attribute
                         if attribute.name == 'channels'), '-')
        source = producers.get(node.input[0])
        readers = [reader.op_type for reader in consumers[node.output[0]]]
        if node.output[0] in outputs:
            readers.append('graph output')
        reorders.append(Reorder(node.name, node.op_type, channels, node_ms.get(node.name, 0.0),
                                source.op_type if source is not None else 'graph input',
                                ', '.join(sorted(set(readers))) or '-'))
    return reorders


def profile_operators(sessions: Sequence[tuple[str, Any, Path | None]], batch: np.ndarray, *,
                      iterations: int, warmup: int) -> list[OperatorProfile]:
    """ONNX Runtime's operator profile of every ``(name, session, optimised graph path)``.

    The sessions were made with profiling on; they run ``batch`` in turn (``warmup`` runs
    first, left out), then their profiles are read.
    """
    for _ in range(warmup):
        for _, session, _ in sessions:
            session.run(None, {session.get_inputs()[0].name: batch})
    for iteration in range(iterations):
        for offset in range(len(sessions)):
            _, session, _ = sessions[(iteration + offset) % len(sessions)]
            session.run(None, {session.get_inputs()[0].name: batch})
    profiles = []
    for name, session, optimized_path in sessions:
        profile_file = Path(session.end_profiling())
        events = json.loads(profile_file.read_text())
        profile_file.unlink()
        by_type, by_node, runs_ms = parse_ort_profile(events, skip_runs=warmup)
        node_ms = _medians(by_node)
        reorders = graph_reorders(optimized_path, node_ms) \
            if optimized_path is not None and optimized_path.is_file() else []
        profiles.append(OperatorProfile(name, len(runs_ms), _medians(by_type),
                                        statistics.median(runs_ms), reorders))
    return profiles


def format_operator_table(profiles: list[OperatorProfile]) -> str:
    """Operator types as rows (slowest first), milliseconds and share per graph."""
    ops = sorted({op for profile in profiles for op in profile.by_type_ms},
                 key=lambda op: -max(profile.by_type_ms.get(op, 0.0) for profile in profiles))
    columns = [('operator', '<22')]
    for profile in profiles:
        columns += [(f'{profile.name} ms', '>16.2f'), ('%', '>6.1f')]
    rows: list[list] = []
    for op in ops:
        row: list = [op]
        for profile in profiles:
            ms = profile.by_type_ms.get(op, 0.0)
            row += [ms, 100.0 * ms / profile.total_ms if profile.total_ms else 0.0]
        rows.append(row)
    rows.append(['sum of operators'] + [value for profile in profiles
                                        for value in (profile.total_ms, 100.0)])
    rows.append(['whole run'] + [value for profile in profiles
                                 for value in (profile.run_ms, 100.0 * profile.run_ms
                                               / profile.total_ms if profile.total_ms else 0.0)])
    return text_table(columns, rows)


def format_reorder_table(profile: OperatorProfile) -> str:
    """One graph's layout reorders: time, channels and the operators around each."""
    columns = [('reorder', '<14'), ('channels', '>8'), ('ms', '>7.2f'), ('after', '<14'),
               ('before', '<30')]
    rows = [[reorder.op_type, reorder.channels, reorder.ms, reorder.source, reorder.targets]
            for reorder in sorted(profile.reorders, key=lambda reorder: -reorder.ms)]
    return text_table(columns, rows)


def profiling_session(path: Path, providers: list, folder: Path, name: str):
    """A profiling session on ``path`` saving its optimised graph: (session, graph path)."""
    from deeplab_ros.core.inference.backends import onnxruntime_session

    optimized = folder / f'{name}.optimized.onnx'
    session = onnxruntime_session(path, providers, profile_prefix=str(folder / name),
                                  optimized_path=optimized)
    return session, optimized


def run_profile(args, segmenters: Sequence[Any], frame: np.ndarray,
                synchronize: Callable[[], None]) -> dict:
    """Print the stage table and, for ONNX Runtime, the operator and reorder tables."""
    from deeplab_ros.core.inference.backends import OnnxRuntimeForward

    named = [(segmenter.describe_backend(), segmenter) for segmenter in segmenters]
    stages = profile_stages(named, frame, iterations=args.iterations, warmup=args.warmup,
                            synchronize=synchronize)
    height, width = frame.shape[:2]
    print(f'\nstages of the segmenter, {width}x{height} frame, input '
          f'{segmenters[0].input_size} (median ms; on CUDA each stage waits for the device):')
    print(format_stage_table(stages))
    report: dict = {'stages': [vars(profile) for profile in stages]}
    ort = next((segmenter for segmenter in segmenters
                if isinstance(segmenter.forward_backend, OnnxRuntimeForward)), None)
    if ort is None:
        print('\n(operator profile: only for the onnxruntime backend)')
        return report
    forward = ort.forward_backend
    batch = ort.prepare_batch([frame]).cpu().numpy()
    with tempfile.TemporaryDirectory(prefix='deeplab-ros-profile-') as folder:
        graphs = [('current', forward.path)] + [
            (Path(extra).name, Path(extra)) for extra in args.profile_onnx]
        sessions = []
        for index, (name, path) in enumerate(graphs):
            session, optimized = profiling_session(path, forward.provider_settings,
                                                   Path(folder), f'graph{index}')
            sessions.append((name, session, optimized))
        operators = profile_operators(sessions, batch, iterations=args.iterations,
                                      warmup=args.warmup)
    print(f'\nONNX Runtime operators ({ort.describe_backend()}, {forward.path.name}; median ms '
          f'per run over {operators[0].runs} runs, graphs run in turn):')
    print(format_operator_table(operators))
    for profile in operators:
        if profile.reorders:
            print(f'\nlayout reorders in {profile.name} (NCHWc <-> NCHW, inserted by ONNX '
                  'Runtime):')
            print(format_reorder_table(profile))
    report['operators'] = [{**vars(profile), 'reorders': [vars(reorder)
                                                          for reorder in profile.reorders]}
                           for profile in operators]
    return report
