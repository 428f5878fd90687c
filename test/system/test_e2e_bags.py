"""End to end over recorded bags of real footage: bag -> segmentation node -> recorded bag.

The node runs as its own process through its entry point with config/segment.yaml and the
shipped Fast DDS profile, and is configured and activated over its lifecycle services (what
launch's autostart does). A bag of 20 traffic + 20 pedestrian frames is played into it and its
outputs are recorded; the tests below check the recording. The node drops frames that arrive
while it is busy; the player here waits for each frame's labels before it plays the next one,
so what is checked is what the node guarantees for every frame, whatever the host's speed
(dropping under load is tested in-process, ``test_node_outputs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib.util
import os
from pathlib import Path
import threading

import cv2
import numpy as np
import pytest

from support.bags import child_processes, large_image_environment


if importlib.util.find_spec('deeplab_ros.ros.segmentation_node') is None:
    pytest.skip('deeplab_ros/ros/segmentation_node.py is not present', allow_module_level=True)

from deeplab_ros.bagtools.info import read_messages  # noqa: E402
from deeplab_ros.bagtools.pipeline import PipelineRun, run_bag_through_node  # noqa: E402
from deeplab_ros.ros.node_process import NodeProcess  # noqa: E402
from deeplab_ros.ros.stamps import header_key  # noqa: E402
from deeplab_ros.core.labels import ade20k_labels  # noqa: E402
from deeplab_ros.tools.demo import (  # noqa: E402
    analyse, build_input_bag, FrameReport, legend_entries, SWATCH, write_contact_sheet)

ROOT = Path(__file__).resolve().parents[2]
PARAMS_FILE = ROOT / 'config' / 'segment.yaml'
FRAMES_PER_SOURCE = 20
BAG_RATE = 4.0  # frames per second at most; the player also waits for each frame's labels
FRAME_WIDTH = 384  # 384x288 pedestrians, 384x216 traffic: under the default SHM segment
# vtest.avi frames 500, 510, ...: a crowded stretch, people in every frame, 1 s apart.
PEDESTRIAN_FIRST = 500
PEDESTRIAN_STEP = 10
INPUT_SIZE = 0  # the default model at its own input size
OUTPUT_TOPICS = ('/segmentation/labels', '/segmentation/overlay', '/segmentation/color',
                 '/segmentation/classes', '/segmentation/camera_info')


@dataclass
class EndToEnd:
    """One run of the bag through the node and what was observed around it."""

    directory: Path
    run: PipelineRun
    reports: list[FrameReport]
    node_children_while_active: list[int]
    late_label_info: list
    children_before: set[int]
    diagnostics: dict[str, str]


@pytest.fixture(scope='module')
def e2e(tmp_path_factory: pytest.TempPathFactory) -> EndToEnd:
    directory = tmp_path_factory.mktemp('e2e')
    build_input_bag(directory / 'input_bag', pedestrian_frames=FRAMES_PER_SOURCE,
                    traffic_frames=FRAMES_PER_SOURCE, rate=BAG_RATE,
                    resize_width=FRAME_WIDTH, pedestrian_first=PEDESTRIAN_FIRST,
                    pedestrian_step=PEDESTRIAN_STEP)
    observed: dict[str, object] = {}
    children_before = set(child_processes())

    def after_play(session_node, node_process: NodeProcess) -> None:
        from diagnostic_msgs.msg import DiagnosticArray  # noqa: PLC0415
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
        from vision_msgs.msg import LabelInfo  # noqa: PLC0415

        observed['children'] = child_processes(node_process.pid)
        received: list = []
        arrived = threading.Event()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)

        def on_label_info(message: LabelInfo) -> None:
            received.append(message)
            arrived.set()

        subscription = session_node.create_subscription(
            LabelInfo, '/segmentation/label_info', on_label_info, latched)
        arrived.wait(20.0)
        session_node.destroy_subscription(subscription)
        observed['late_label_info'] = received

        # The node's counters once it has published its last labels (diagnostics every 1 s).
        values: dict[str, str] = {}
        settled = threading.Event()

        def on_diagnostics(message: DiagnosticArray) -> None:
            for status in message.status:
                found = {item.key: item.value for item in status.values}
                if 'frames_processed' in found:
                    values.clear()
                    values.update(found)
                    settled.set()
        subscription = session_node.create_subscription(
            DiagnosticArray, '/diagnostics', on_diagnostics, 10)
        settled.wait(30.0)
        session_node.destroy_subscription(subscription)
        observed['diagnostics'] = dict(values)

    env = large_image_environment()
    run = run_bag_through_node(
        directory / 'input_bag', directory / 'output_bag', params_file=PARAMS_FILE,
        parameters={'device': 'cpu', 'input_size': INPUT_SIZE}, env=env,
        log_path=directory / 'node.log', after_play=after_play, paced=True)
    reports = analyse(directory / 'input_bag', directory / 'output_bag', run.publish_times)
    processed = [r for r in reports if r.processed]
    latencies = sorted(r.latency_ms for r in processed if r.latency_ms is not None)
    print(f'\ne2e: {len(processed)}/{len(reports)} frames processed at input {INPUT_SIZE}, '
          f'bag at {BAG_RATE:g} fps; latency p50 '
          f'{latencies[len(latencies) // 2] if latencies else float("nan"):.0f} ms; '
          f'run {run.wall_s:.1f} s; recorded {run.recording.counts}')
    return EndToEnd(directory=directory, run=run, reports=reports,
                    node_children_while_active=observed.get('children', [None]),
                    late_label_info=observed.get('late_label_info', []),
                    children_before=children_before,
                    diagnostics=observed.get('diagnostics', {}))


def _processed(e2e: EndToEnd, source: str = '') -> list[FrameReport]:
    return [r for r in e2e.reports if r.processed and (not source or r.source == source)]


def test_node_exits_zero_on_sigint_and_leaves_nothing_running(e2e: EndToEnd) -> None:
    assert e2e.run.node_exit_code == 0, e2e.run.node_log[-3000:]
    assert e2e.node_children_while_active == []
    pid = e2e.run.node_pid
    assert not os.path.exists(f'/proc/{pid}'), f'node process {pid} is still there'
    assert set(child_processes()) <= e2e.children_before


def test_every_frame_received_is_processed_or_counted_as_skipped(e2e: EndToEnd) -> None:
    assert e2e.run.images_published == 2 * FRAMES_PER_SOURCE
    for source in ('vtest', 'traffic_frames'):
        assert _processed(e2e, source), (source, e2e.run.recording.counts,
                                         e2e.run.node_log[-3000:])
    counters = {key: int(e2e.diagnostics[key]) for key in
                ('frames_received', 'frames_processed', 'frames_skipped', 'bad_inputs')}
    assert counters['frames_received'] == (counters['frames_processed']
                                           + counters['frames_skipped']), counters
    assert counters['frames_processed'] == len(_processed(e2e)), counters
    assert counters['bad_inputs'] == 0, counters
    # Played at the node's pace, no frame ever waits behind a newer one.
    assert counters['frames_skipped'] == 0, counters
    assert counters['frames_received'] == (e2e.run.images_published
                                           - e2e.run.images_unanswered), counters


def test_every_output_carries_the_header_of_its_frame(e2e: EndToEnd) -> None:
    output_bag = e2e.directory / 'output_bag'
    inputs = {header_key(m.header) for _, m in
              read_messages(e2e.directory / 'input_bag', '/camera/image_raw')}
    processed = {r.stamp for r in _processed(e2e)}
    for topic in OUTPUT_TOPICS:
        stamps = [header_key(m.header) for _, m in read_messages(output_bag, topic)]
        assert stamps, f'nothing recorded on {topic}'
        assert set(stamps) <= inputs, f'{topic} carries headers of no input frame'
        assert len(stamps) == len(set(stamps)), f'{topic} published a frame twice'
        assert set(stamps) == processed, f'{topic} does not cover every processed frame'


def test_labels_and_overlay_have_the_frame_size(e2e: EndToEnd) -> None:
    sizes = {header_key(m.header): (m.width, m.height) for _, m in
             read_messages(e2e.directory / 'input_bag', '/camera/image_raw')}
    output_bag = e2e.directory / 'output_bag'
    for topic, encoding in (('/segmentation/labels', 'mono8'),
                            ('/segmentation/overlay', 'rgb8')):
        for _, message in read_messages(output_bag, topic):
            assert message.encoding == encoding
            assert (message.width, message.height) == sizes[header_key(message.header)]


def test_cars_in_traffic_and_people_among_pedestrians(e2e: EndToEnd) -> None:
    for source, name in (('traffic_frames', 'car'), ('vtest', 'person')):
        frames = _processed(e2e, source)
        with_class = [r for r in frames if name in r.classes]
        print(f'{name}: in {len(with_class)}/{len(frames)} processed {source} frames')
        assert frames and len(with_class) >= 0.8 * len(frames), (
            name, [r.classes for r in frames])


def test_label_info_reaches_a_subscriber_that_joins_late(e2e: EndToEnd) -> None:
    assert e2e.late_label_info, 'no label info for a subscriber that joined after playback'
    names = [c.class_name for c in e2e.late_label_info[-1].class_map]
    assert len(names) == 151 and {'other', 'person', 'car', 'road', 'sidewalk'} <= set(names)


def test_the_contact_sheet_legend_names_the_colour_of_each_class_shown(
        e2e: EndToEnd, tmp_path: Path) -> None:
    processed = [r for r in e2e.reports if r.processed]
    entries = legend_entries(e2e.directory / 'output_bag', processed)
    shown = {name for report in processed for name in report.classes}
    assert {name for name, _ in entries} == shown and {'person', 'car'} <= shown
    palette = ade20k_labels()  # the default model's classes and colours
    for name, colour in entries:
        assert colour == palette.palette[palette.class_names.index(name)], name

    path = tmp_path / 'contact_sheet.png'
    on_sheet = write_contact_sheet(e2e.directory / 'input_bag', e2e.directory / 'output_bag',
                                   e2e.reports, path)
    assert on_sheet
    sheet = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    band = sheet[-sheet.shape[0] // 3:]  # the legend is below the grid
    for name, colour in legend_entries(e2e.directory / 'output_bag', on_sheet):
        swatch = np.all(band == np.array(colour, np.uint8), axis=2)
        assert swatch.sum() >= SWATCH * SWATCH, (name, colour)
