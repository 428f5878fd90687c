"""Nav2's semantic_segmentation_layer on a real-footage RGB-D bag played through the node.

The bag (``deeplab-ros-bag make`` from the shared Kinect frames: JPEG colour, 16UC1 depth,
camera_info) is played into the node process started with ``config/nav2.yaml`` and a
Cityscapes model; the port of the layer's subscriber (:mod:`support.nav2_layer`) runs as its
own process, as the layer does in Nav2's costmap node, configured from the ``cityscapes``
source of ``config/nav2_semantic_segmentation_layer.yaml``. Both processes use the shipped
Fast DDS profile, as docs/nav2.md says to.
"""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys
import threading

import pytest

from deeplab_ros.bagtools.info import read_messages
from deeplab_ros.bagtools.pipeline import run_bag_through_node
from deeplab_ros.core.weights.pretrained import pretrained_checkpoint
from deeplab_ros.ros.stamps import stamp_ns
from support.bags import large_image_environment, run_bag_cli, stop_process
from support.nav2_layer import layer_sources
from support.rgbd import rgbd_dir

ROOT = Path(__file__).resolve().parents[2]
LAYER_CONFIG = ROOT / 'config' / 'nav2_semantic_segmentation_layer.yaml'
MODEL = 'deeplabv3_mnedgetpu_cityscapes'
DEPTH = '/camera/depth/image_raw'
IMAGE = '/camera/image_raw/compressed'
INFO = '/camera/camera_info'


@pytest.fixture(scope='module')
def rgbd_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp('nav2_bag') / 'rgbd'
    completed = run_bag_cli('make', str(rgbd_dir()), '-o', str(output), '--rate', '2',
                            '--format', 'jpeg')
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return output


def _wait_for_line(process: subprocess.Popen, expected: str, timeout_s: float) -> None:
    """Wait for the process to print ``expected`` (its subscriptions matched the node's)."""
    assert process.stdout is not None
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # lines before it (logging) are not needed later
            if line.strip() == expected:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout_s), f'the layer port did not print {expected} within {timeout_s:g} s'


def test_the_layer_buffers_the_bag_s_frames_with_the_cityscapes_classes(
        rgbd_bag: Path, tmp_path: Path) -> None:
    pretrained_checkpoint(MODEL)  # converted beforehand, as `deeplab-ros-models fetch` does
    env = large_image_environment({'PYTHONPATH': f'{ROOT / "test"}:{ROOT}'})
    layer = subprocess.Popen([sys.executable, '-m', 'support.nav2_layer', str(LAYER_CONFIG),
                              'cityscapes'], env=env, cwd=ROOT / 'test',
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert layer.stdout is not None and layer.stdout.readline().strip() == 'READY'
        run = run_bag_through_node(
            rgbd_bag, tmp_path / 'out', params_file=ROOT / 'config' / 'nav2.yaml',
            parameters={'weights': f'pretrained:{MODEL}', 'input_size': 257, 'device': 'cpu',
                        'input_transport': 'compressed',
                        # Reliable inputs, set by QoS overrides as a user can: this test
                        # process talks UDP only, and best-effort images sent over it to the
                        # node (shared memory and UDP) were lost at times, every one of a run.
                        f'qos_overrides.{IMAGE}.subscription.reliability': 'reliable',
                        f'qos_overrides.{DEPTH}.subscription.reliability': 'reliable',
                        f'qos_overrides.{INFO}.subscription.reliability': 'reliable'},
            depth_topic=DEPTH, env=env, log_path=tmp_path / 'node.log', paced=True,
            before_play=lambda *_: _wait_for_line(layer, 'MATCHED', 120.0))
    finally:
        code, output = stop_process(layer, timeout=30.0)
    assert run.node_exit_code == 0, run.node_log[-3000:]
    assert code == 0, output[-3000:]
    # Reliable input, played at the node's pace: every frame reached the node.
    assert run.images_published == 5 and run.images_unanswered == 0, (
        run.recording.counts, run.node_log[-3000:])
    seen = json.loads(output.strip().splitlines()[-1])
    source = layer_sources(LAYER_CONFIG)['cityscapes']
    names = {name for _, name in seen['label_info']}
    assert set(source.class_of_name()) <= names, sorted(set(source.class_of_name()) - names)
    assert seen['refusals'] == [] and seen['contract'] == []
    published = {stamp_ns(m.header)
                 for _, m in read_messages(tmp_path / 'out', '/segmentation/points')}
    # The player sent each frame's depth and camera_info (same bag time) before the frame and
    # they were acknowledged: a cloud each.
    assert run.images_unacknowledged == 0
    assert len(published) == run.images_published, (
        run.recording.counts, run.node_log[-3000:])
    frames = seen['frames']
    # The layer's subscriptions are best effort: a loaded host may lose a set now and then,
    # never most of them (shared memory on one host).
    assert len(frames) == seen['sets'] >= 3, (seen['received'], run.recording.counts)
    for frame in frames:
        assert frame['stamp_ns'] in published
        assert frame['size'] == [480, 640] and frame['considered'] > 0
        assert min(frame['scores']) < 255  # the node's confidence, not the layer's default
    # Which points each class type marks, as the layer computes it: the indoor frames have
    # walls and furniture within 5 m (obstacle, Cityscapes' building / wall / ...) in every
    # frame. The traversable type (road, sidewalk, terrain) is not asserted: a street model
    # labels an indoor floor as anything.
    assert all(frame['marks']['obstacle'] > 0 for frame in frames), frames
