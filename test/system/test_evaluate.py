"""``deeplab-ros-eval`` run as a real command on the shared PASCAL VOC validation images."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from deeplab_ros.tools.bench import RESOLUTIONS


REPO = Path(__file__).resolve().parents[2]


def _evaluate(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'deeplab_ros.tools.evaluate', '--device', 'cpu',
                           *arguments], cwd=REPO, capture_output=True, text=True, timeout=600)


def _miou(completed: subprocess.CompletedProcess) -> float:
    assert completed.returncode == 0, completed.stderr
    last = completed.stdout.strip().splitlines()[-1]
    name, value = last.split()
    assert name == 'mIoU' and len(value.split('.')[1]) == 4, last
    return float(value)


def test_float_dm05_model_reaches_the_published_accuracy(shared: Path, tmp_path: Path) -> None:
    completed = _evaluate('--weights', 'pretrained:deeplabv3_mnv2_dm05_float',
                          '--input-size', '513', '--confusion-csv', str(tmp_path / 'cm.csv'),
                          '--overlays', str(tmp_path / 'overlays'))
    assert _miou(completed) >= 0.78
    lines = completed.stdout.splitlines()
    assert sum(line.startswith('image ') for line in lines) == 10
    assert any(line.split()[:1] == ['aeroplane'] for line in lines)
    rows = (tmp_path / 'cm.csv').read_text().splitlines()
    assert rows[0].startswith('truth \\ predicted,background,aeroplane') and len(rows) == 22
    counts = np.array([[int(cell) for cell in row.split(',')[1:]] for row in rows[1:]])
    assert counts.sum() > 10 * 513 * 513 * 0.9  # every non-ignored pixel of the ten images
    overlays = sorted((tmp_path / 'overlays').glob('*_overlay.png'))
    assert len(overlays) == 10 and cv2.imread(str(overlays[0])).shape == (513, 513, 3)


def test_dequantized_dm10_model(shared: Path) -> None:
    # Google's uint8 model in its own TFLite interpreter scores 0.777 on these ten images
    # (513 input, arg-max); its dequantized float port must do at least as well.
    completed = _evaluate('--weights', 'pretrained:deeplabv3_mnv2_dm10_dequant',
                          '--input-size', '513')
    assert _miou(completed) >= 0.775


def test_voc_layout_dataset_and_split(shared: Path, tmp_path: Path) -> None:
    root = tmp_path / 'VOC'
    for folder in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
        (root / folder).mkdir(parents=True)
    for name in ('0', '8'):
        shutil.copy(shared / f'data/voc_val/{name}_image.png', root / 'JPEGImages' / f'{name}.png')
        shutil.copy(shared / f'data/voc_val/{name}_target.png',
                    root / 'SegmentationClass' / f'{name}.png')
    (root / 'ImageSets/Segmentation/mini.txt').write_text('0\n8\n')
    completed = _evaluate('--weights', 'pretrained:deeplabv3_mnv2_dm05_float',
                          '--data', str(root), '--split', 'mini', '--input-size', '257',
                          '--upsample', 'dense')
    assert 0.5 < _miou(completed) <= 1.0
    assert 'upsample: dense' in completed.stdout
    assert [line.split()[1] for line in completed.stdout.splitlines()
            if line.startswith('image ')] == ['0:', '8:']


def test_problems_are_reported_without_a_traceback(tmp_path: Path) -> None:
    missing = _evaluate('--data', str(tmp_path / 'nowhere'))
    assert missing.returncode == 1 and 'dataset folder not found' in missing.stderr
    assert 'Traceback' not in missing.stderr
    bad_weights = _evaluate('--weights', str(tmp_path / 'absent.pt'))
    assert bad_weights.returncode == 1 and 'absent.pt' in bad_weights.stderr
    assert 'Traceback' not in bad_weights.stderr


def test_bench_command_writes_its_table_and_json(shared: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.bench', '--device', 'cpu', '--iterations', '1',
         '--warmup', '0', '--input-sizes', '129', '--resolutions', 'qvga,vga',
         '--node-frames', '8', '--node-block', '4', '--json', str(tmp_path / 'bench.json')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / 'bench.json').read_text())
    backends = report['backends']
    assert backends[0] == 'torch' and set(backends) <= {'torch', 'onnxruntime'}
    assert [(row['width'], row['height'], row['input_size'], row['backend'].split()[0])
            for row in report['core']] == \
        [(w, h, 129, backend) for w, h in ((320, 240), (640, 480)) for backend in backends]
    for row in report['core']:
        assert row['model_ms'] > 0 and row['segmenter_ms'] > 0
        assert row['ratio'] == pytest.approx(row['segmenter_ms'] / row['model_ms'], abs=1e-3)
    assert 'overhead' in completed.stdout
    # One speed-up row per case and backend after the first, from the same medians.
    assert len(report['backend_speedups']) == 2 * (len(backends) - 1)
    for speedup in report['backend_speedups']:
        pair = [row for row in report['core'] if row['input_size'] == 129
                and row['width'] == RESOLUTIONS[speedup['resolution']][0]]
        assert speedup['segmenter_speedup'] == pytest.approx(
            pair[0]['segmenter_ms'] / pair[1]['segmenter_ms'], rel=1e-3)
    assert report['node_backend'] == 'auto'
    # exact against dense, labels alone and with the confidence image, every resolution.
    assert [(row['resolution'], row['outputs']) for row in report['upsample_compare']] == \
        [(name, outputs) for name in ('qvga', 'vga')
         for outputs in ('labels', 'labels+confidence')]
    for row in report['upsample_compare']:
        assert row['speedup'] == pytest.approx(row['dense_ms'] / row['exact_ms'], rel=1e-3)
    assert 'exact against dense' in completed.stdout
    # The node part: its own process over DDS, every frame accounted for.
    node_cases = [(row['width'], row['input_size']) for row in report['node']]
    assert node_cases == [(320, 129), (640, 129)]
    for row in report['node']:
        # Two blocks of 4 label images, each followed by 4 frames through this process's
        # segmenter; a frame the node replaced by a newer one is made up for.
        assert row['frames_out'] == 8 and row['frames_sent'] >= 8
        assert row['dropped'] == row['frames_sent'] - row['frames_out']
        assert row['output_fps'] > 0 and row['segmenter_fps'] > 0
        assert 0 < row['latency_p50_ms'] <= row['latency_p99_ms']
        assert len(row['block_ratios']) == 2 and all(r > 0 for r in row['block_ratios'])
        assert row['ratio'] == pytest.approx(row['output_fps'] / row['segmenter_fps'], rel=1e-3)
    assert report['node_over_segmenter'] == [row['ratio'] for row in report['node']]
    assert report['node_block_frames'] == 4
    assert 'node end to end with backend auto' in completed.stdout


def test_bench_profile_times_each_stage_and_onnxruntime_operator(tmp_path: Path) -> None:
    pytest.importorskip('onnxruntime')
    other = tmp_path / 'other.onnx'  # a second graph, profiled in turn with the current one
    exported = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.export', '--input-size', '97', '--output',
         str(other)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr
    completed = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.bench', '--profile', '--device', 'cpu',
         '--iterations', '3', '--warmup', '1', '--input-sizes', '97,129', '--resolutions',
         'qvga,vga', '--backends', 'torch,onnxruntime', '--profile-onnx', str(other),
         '--json', str(tmp_path / 'profile.json')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / 'profile.json').read_text())
    assert (report['input_size'], report['resolution']) == (97, 'qvga')  # the first case
    assert [row['name'].split()[0] for row in report['stages']] == ['torch', 'onnxruntime']
    for row in report['stages']:
        assert list(row['stages_ms']) == ['upload', 'preprocess', 'forward', 'postprocess',
                                          'download']
        assert min(row['stages_ms'].values()) >= 0 and row['stages_ms']['forward'] > 0
    current, extra = report['operators']
    assert (current['name'], extra['name']) == ('current', 'other.onnx')
    for graph in (current, extra):
        assert graph['runs'] == 3 and graph['by_type_ms']['Conv'] > 0 and graph['run_ms'] > 0
        for reorder in graph['reorders']:
            assert reorder['op_type'] in ('ReorderInput', 'ReorderOutput')
            assert reorder['ms'] >= 0 and reorder['source'] and reorder['targets']
    for title in ('stages of the segmenter', 'ONNX Runtime operators', 'whole call'):
        assert title in completed.stdout


def test_node_frames_split_into_blocks_of_at_least_two() -> None:
    from deeplab_ros.tools.bench_node import block_sizes

    assert block_sizes(100, 10) == [10] * 10
    assert block_sizes(25, 10) == [10, 10, 5]
    assert block_sizes(21, 10) == [10, 11]  # a single frame cannot be timed: joins the last
    assert block_sizes(7, 10) == [7]
    assert block_sizes(1, 10) == [2]
    assert block_sizes(9, 1) == [2, 2, 2, 3]


def test_bench_against_another_checkout_runs_each_in_its_own_worker(tmp_path: Path) -> None:
    other = tmp_path / 'other_checkout'
    shutil.copytree(REPO / 'deeplab_ros', other / 'deeplab_ros',
                    ignore=shutil.ignore_patterns('__pycache__'))
    completed = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.bench', '--device', 'cpu', '--iterations', '2',
         '--warmup', '0', '--input-sizes', '97', '--resolutions', 'qvga', '--node-frames', '0',
         '--no-spatial', '--no-upsample-compare', '--backends', 'torch',
         '--weights', 'pretrained:deeplabv3_mnv2_dm05_float', '--against', str(other),
         '--json', str(tmp_path / 'bench.json')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr
    against = json.loads((tmp_path / 'bench.json').read_text())['against']
    assert against['checkout'] == str(other)
    [row] = against['timings']
    assert (row['resolution'], row['width'], row['height']) == ('qvga', 320, 240)
    assert row['this_ms'] > 0 and row['other_ms'] > 0
    assert row['speedup'] == pytest.approx(row['other_ms'] / row['this_ms'], rel=1e-3)
    # Each worker imported its own checkout's package, with that checkout's defaults.
    assert Path(row['other_setup']['package']) == other / 'deeplab_ros'
    assert Path(row['this_setup']['package']) != other / 'deeplab_ros'
    assert row['this_setup']['input_size'] == row['other_setup']['input_size']
    assert f'against {other}' in completed.stdout

    missing = subprocess.run(
        [sys.executable, '-m', 'deeplab_ros.tools.bench', '--device', 'cpu', '--iterations', '1',
         '--node-frames', '0', '--no-spatial', '--no-upsample-compare', '--backends', 'torch',
         '--input-sizes', '97', '--resolutions', 'qvga', '--against', str(tmp_path / 'none')],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert missing.returncode == 1
    assert 'is not a deeplab_ros checkout' in missing.stderr
    assert 'Traceback' not in missing.stderr
