"""Reliability: malformed input, long runs, lifecycle churn, bad weights, missing devices.

``make test`` runs these at a size that finishes in minutes; ``--run-slow`` runs the full
sizes (10 000 soak frames, 50 churn cycles). Figures are printed (``-s``) and kept in
docs/benchmarks.md.
"""

from __future__ import annotations

import os
from pathlib import Path
import sys
import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header
import torch

from support.codec import encode_image
from deeplab_ros.core.inference.backends import onnxruntime_available
from deeplab_ros.core.models import build_model
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, save_checkpoint
from deeplab_ros.ros.spinning import wait_until
from support.ros import image_message, InProcessNode, node_under_test, RosTester


def _rss_mb(pid: int | None = None) -> float:
    status = Path(f'/proc/{pid or os.getpid()}/status').read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith('VmRSS'))) / 1024.0


def _thread_count() -> int:
    return len(os.listdir(f'/proc/{os.getpid()}/task'))


@pytest.fixture(scope='module')
def small_frame(shared: Path) -> np.ndarray:
    image = cv2.imread(str(shared / 'data/photos/basketball1.png'))[..., ::-1]
    return np.ascontiguousarray(cv2.resize(image, (96, 72)))


def _malformed(index: int, frame: np.ndarray) -> Image:
    """One of many kinds of broken Image messages."""
    header = Header(frame_id=f'bad_{index}')
    height, width = frame.shape[:2]
    good = encode_image(frame, 'rgb8', header)
    kind = index % 10
    if kind == 0:
        good.encoding = ('jpeg', 'rgb16', '', 'bgr8 ', 'RGB8', '32FC1')[index % 6]
    elif kind == 1:  # mismatched encoding: rgb8 claimed, mono8-sized data
        good.data = good.data[: height * width]
        good.step = width * 3
    elif kind == 2:  # step smaller than a row
        good.step = width * 3 - 1
    elif kind == 3:  # truncated data
        good.data = good.data[: len(good.data) // 2]
    elif kind == 4:  # zero size
        good.height, good.width, good.step = 0, 0, 0
    elif kind == 5:  # huge claimed size, tiny data
        good.height, good.width, good.step = 100_000, 100_000, 300_000
    elif kind == 6:  # mono16 claimed with 8-bit data
        good.encoding = 'mono16'
        good.step = width * 2
        good.data = good.data[: height * width]
    elif kind == 7:  # odd width for 4:2:2
        good.encoding, good.width, good.step = 'yuv422', width - 1, (width - 1) * 2
    elif kind == 8:  # bayer of 1 pixel
        good.encoding, good.height, good.width, good.step = 'bayer_rggb8', 1, 1, 1
        good.data = b'\x00'
    else:  # width claimed larger than step allows
        good.width = width * 4
    return good


def test_fuzz_malformed_images_are_counted_and_valid_frames_still_processed(
        small_frame: np.ndarray, capfd: pytest.CaptureFixture) -> None:
    bad_count, valid_count, bad_per_valid = 1000, 25, 40
    with node_under_test({'input_size': 65, 'diagnostics_period': 0.5}) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        diagnostics = tester.collect('/diagnostics', DiagnosticArray)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/image')
        publisher = tester.publisher('/image')
        stats = node.node.statistics
        sent_bad, valid_stamps = 0, []
        started = time.monotonic()
        for round_index in range(valid_count):
            for _ in range(bad_per_valid):
                # Paced: the sensor-data subscription keeps the newest 5 messages only, by
                # design, so an unpaced burst would lose messages before they are looked at.
                publisher.publish(_malformed(sent_bad, small_frame))
                sent_bad += 1
                assert wait_until(lambda: stats.bad_inputs == sent_bad, 30.0), sent_bad
            stamp = round_index + 1
            if round_index % 5 == 4:  # a valid big-endian mono16 frame
                grey = np.repeat(cv2.cvtColor(small_frame, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
                header = Header(frame_id='valid')
                header.stamp.sec = stamp
                message = encode_image(grey, 'mono16', header, is_bigendian=1)
            elif round_index % 5 == 3:  # valid pixels, frame_id bytes that are not UTF-8
                message = image_message(small_frame, frame_id='abcd', stamp_ns=0)
                message.header.stamp.sec = stamp
                message = serialize_message(message).replace(b'abcd', b'\xff\xfe\xfd\xfc')
            else:
                message = image_message(small_frame, frame_id='valid', stamp_ns=0)
                message.header.stamp.sec = stamp
            publisher.publish(message)
            valid_stamps.append(stamp)
            assert wait_until(lambda: stamp in {m.header.stamp.sec
                                                for m in labels.snapshot()}, 30.0), stamp
        duration = time.monotonic() - started
        assert sent_bad == bad_count
        assert wait_until(lambda: stats.bad_inputs == bad_count, 10.0), stats.bad_inputs
        assert sorted(m.header.stamp.sec for m in labels.snapshot()) == valid_stamps
        assert wait_until(lambda: any(
            item.key == 'bad_inputs' and item.value == str(bad_count)
            for array in diagnostics.snapshot() for status in array.status
            for item in status.values), 5.0), 'bad inputs reported on /diagnostics'
        logged = capfd.readouterr().err  # the node's own log output (this process)
        errors = [line for line in logged.splitlines() if 'bad image on /image' in line]
        assert errors, 'bad input is reported'
        assert len(errors) <= duration / 5.0 + 3, (len(errors), duration)  # throttled
        print(f'\nfuzz: {bad_count} malformed + {valid_count} valid frames in {duration:.1f} s; '
              f'{stats.bad_inputs} counted, {len(errors)} error log lines, all valid processed')


@pytest.mark.slow
@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_churn_leaves_no_threads_memory_or_graph_entities(full_size: bool, backend: str) -> None:
    if backend == 'onnxruntime' and not onnxruntime_available():
        pytest.skip('onnxruntime is not installed')
    cycles = 50 if full_size else 20
    node = InProcessNode({'input_size': 65, 'backend': backend})
    tester = RosTester()
    topics = ('/segmentation/labels', '/segmentation/classes', '/segmentation/label_info')
    try:
        life = tester.lifecycle
        threads, rss = [], []
        for cycle in range(cycles):
            assert life.change('configure') and life.change('activate'), cycle
            assert life.change('deactivate') and life.change('cleanup'), cycle
            threads.append(_thread_count())
            rss.append(_rss_mb())
        assert wait_until(lambda: all(tester.node.count_publishers(t) == 0 for t in topics)
                          and tester.node.count_subscribers('/image') == 0, 10.0)
        assert node.node._segmenter is None  # noqa: SLF001 - the model is released
        warm = min(3, cycles - 1)
        print(f'\nchurn ({backend}): {cycles} cycles; threads {threads[warm]} -> {threads[-1]}; '
              f'RSS {rss[warm]:.0f} -> {rss[-1]:.0f} MB')
        assert threads[-1] <= threads[warm]
        assert rss[-1] - rss[warm] < 50.0
        if torch.cuda.is_available():  # pragma: no cover - CUDA machines only
            assert torch.cuda.memory_allocated() == 0
    finally:
        tester.close()
        node.close()


@pytest.mark.slow
def test_soak_memory_and_latency_stay_flat(small_frame: np.ndarray, full_size: bool) -> None:
    frames = 10_000 if full_size else 2_000
    parameters = {'input_size': 65, 'publish_color': False, 'publish_overlay': False}
    with node_under_test(parameters) as (node, tester):
        # No collector here: keeping every label image would grow this process by itself.
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/image')
        publisher = tester.publisher('/image')
        received = threading.Event()
        latencies: list[float] = []
        rss_at: dict[int, float] = {}
        sent_at: dict[int, float] = {}

        def on_label(message: Image) -> None:
            latencies.append(time.monotonic() - sent_at.pop(message.header.stamp.nanosec))
            received.set()
        tester.node.create_subscription(Image, '/segmentation/labels', on_label, 10)
        time.sleep(0.5)
        for index in range(frames):
            received.clear()
            sent_at[index + 1] = time.monotonic()
            publisher.publish(image_message(small_frame, stamp_ns=index + 1))
            assert received.wait(10.0), f'frame {index} not processed'
            if index + 1 in (frames // 10, frames):
                rss_at[index + 1] = _rss_mb()
        tenth = frames // 10
        first = np.percentile(latencies[tenth:2 * tenth], 50) * 1000
        last = np.percentile(latencies[-tenth:], 50) * 1000
        p99 = np.percentile(latencies[tenth:], 99) * 1000
        growth = rss_at[frames] - rss_at[tenth]
        print(f'\nsoak: {frames} frames; RSS {rss_at[tenth]:.0f} -> {rss_at[frames]:.0f} MB '
              f'(+{growth:.1f}); latency p50 {first:.1f} ms (2nd tenth) -> {last:.1f} ms '
              f'(last tenth), p99 {p99:.1f} ms')
        assert growth < 50.0
        assert len(latencies) == frames
        assert node.node.statistics.bad_inputs == 0


def _bad_weights(kind: str, folder: Path) -> Path:
    path = folder / f'{kind}.pt'
    if kind == 'truncated':
        model = build_model('deeplabv3_mobilenetv2', depth_multiplier=0.5)
        save_checkpoint(path, model, CheckpointMetadata('deeplabv3_mobilenetv2', 21,
                                                        model_options={'depth_multiplier': 0.5}))
        path.write_bytes(path.read_bytes()[:4096])
    elif kind == 'code':
        torch.save({'model_state': {}, 'x': _Payload(str(folder / 'executed'))}, path)
    elif kind == 'classes':
        model = build_model('deeplabv3plus_mobilenetv2', num_classes=19)
        torch.save({'model_state': model.state_dict()}, path)
    else:  # another architecture's weights, named as DeepLabV3+
        model = build_model('lraspp_mobilenetv3_large')
        torch.save(model.state_dict(), path)
    return path


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.mark.parametrize('kind, variant, cause', [
    ('truncated', '', 'truncated, corrupt or not a torch file'),
    ('code', 'deeplabv3plus_mobilenetv2', 'not plain tensors'),
    ('classes', 'deeplabv3plus_mobilenetv2', "label set 'voc' has 21 classes but the model "
                                             'predicts 19'),
    ('variant', 'deeplabv3plus_mobilenetv2', "looks like variant 'lraspp_mobilenetv3_large'"),
])
def test_bad_weights_fail_configure_with_a_clear_message(tmp_path: Path, kind: str,
                                                         variant: str, cause: str,
                                                         capfd: pytest.CaptureFixture) -> None:
    weights = _bad_weights(kind, tmp_path)
    parameters = {'weights': str(weights), 'input_size': 65, 'variant': variant}
    if kind == 'classes':
        parameters['labels'] = 'voc'  # 21 class names for a 19-class checkpoint
    with node_under_test(parameters) as (node, tester):
        assert tester.lifecycle.change('configure') is False
        assert tester.lifecycle.state() == 'unconfigured'
        logged = capfd.readouterr().err  # the node's own log output (this process)
        assert 'configure failed' in logged and cause in logged, logged[-2000:]
        assert not (tmp_path / 'executed').exists()
        assert tester.set_parameters({'weights': 'pretrained', 'variant': '',
                                      'labels': ''})[0].successful
        assert tester.lifecycle.change('configure'), 'fixed without restarting the process'


def test_auto_device_falls_back_to_cpu_and_says_so_once_per_configure(
        capfd: pytest.CaptureFixture) -> None:
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with node_under_test({'input_size': 65, 'device': 'auto'}) as (node, tester):
        life = tester.lifecycle
        assert life.change('configure')
        assert capfd.readouterr().err.count('CUDA is not available, running on the CPU') == 1
        assert life.change('cleanup') and life.change('configure')
        assert capfd.readouterr().err.count('CUDA is not available, running on the CPU') == 1


def test_missing_onnxruntime_fails_configure_with_the_hint_and_auto_falls_back(
        capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # as if it were not installed
    parameters = {'input_size': 65, 'backend': 'onnxruntime', 'device': 'cpu'}
    with node_under_test(parameters) as (node, tester):
        life = tester.lifecycle
        assert not life.change('configure')
        assert 'pip install onnx onnxruntime' in capfd.readouterr().err
        assert tester.set_parameters({'backend': 'auto'})[0].successful
        for _ in range(2):
            assert life.change('configure')
            err = capfd.readouterr().err
            assert err.count('backend auto: onnxruntime is not installed, using torch') == 1
            assert 'backend torch' in err
            assert life.change('cleanup')
        assert not tester.set_parameters({'backend': 'tensorrt'})[0].successful
