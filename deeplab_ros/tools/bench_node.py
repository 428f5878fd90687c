"""The node end to end for ``deeplab-ros-bench``: its own process, real frames over DDS.

This process publishes a real photo (as rgb8, stamped with the wall clock) to the node
process as fast as the node takes them — always one frame waiting behind the one being
inferred, so the node never idles and never queues — and measures the label images coming
back: delivered rate, latency from the input stamp to receipt (p50/p99) and frames the node
dropped. Both processes use the large-image Fast DDS profile shipped in config/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import os
from pathlib import Path
import threading
import time

import numpy as np

from deeplab_ros.bagtools.config_files import config_file

PROFILE_NAME = 'fastdds_large_images.xml'


@dataclass
class NodeTiming:
    """The node end to end for one (resolution, input size) case."""

    resolution: str
    width: int
    height: int
    input_size: int
    frames_sent: int
    frames_out: int
    output_fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_p50_first_half_ms: float
    latency_p50_second_half_ms: float

    @property
    def dropped(self) -> int:
        """Frames published but not segmented (the node keeps only the newest)."""
        return self.frames_sent - self.frames_out

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {**asdict(self), 'dropped': self.dropped}


def profile_path() -> Path:
    """The shipped Fast DDS profile for large images."""
    return config_file(PROFILE_NAME)


def use_large_image_profile() -> dict[str, str]:
    """Point Fast DDS at the shipped profile (this process and children); returns the env."""
    path = str(profile_path())
    os.environ['FASTRTPS_DEFAULT_PROFILES_FILE'] = path
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = path
    os.environ.pop('FASTDDS_BUILTIN_TRANSPORTS', None)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return dict(os.environ)


def run_node_case(frame: np.ndarray, resolution: str, input_size: int, *, frames: int,
                  weights: str, device: str, log_path: Path | None = None,
                  timeout: float = 600.0) -> NodeTiming:
    """Start the node process, stream ``frames`` copies of ``frame`` through it, measure."""
    from sensor_msgs.msg import Image

    from deeplab_ros.bagtools.pipeline import (
        default_params_file, LifecycleClient, node_command, NodeProcess, SpunNode)
    from deeplab_ros.ros.image_codec import encode_rgb8
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    env = use_large_image_profile()
    parameters = {'input_size': input_size, 'weights': weights, 'device': device,
                  'publish_color': False, 'publish_overlay': False,
                  'diagnostics_period': 0.0}
    process = NodeProcess(node_command(default_params_file(), parameters=parameters), env=env,
                          log_path=log_path)
    spun = SpunNode('deeplab_bench_client')
    client = LifecycleClient(spun.node, '/deeplab_segmentation', alive=process.running)
    try:
        client.bring_up(timeout=180.0)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        publisher = spun.node.create_publisher(Image, '/image', qos)
        arrived = threading.Semaphore(0)
        latencies: list[float] = []
        stamps: list[int] = []

        def on_labels(message: Image) -> None:
            now = time.time_ns()
            stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
            latencies.append((now - stamp) / 1e6)
            stamps.append(stamp)
            arrived.release()
        spun.node.create_subscription(Image, '/segmentation/labels', on_labels, qos)
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        template = encode_rgb8(frame, _header())

        def send() -> None:
            stamp = time.time_ns()
            template.header.stamp.sec, template.header.stamp.nanosec = divmod(stamp, 10**9)
            publisher.publish(template)

        warmup = min(5, frames)
        for _ in range(warmup):  # untimed: first frames pay one-off costs
            send()
            arrived.acquire(timeout=60.0)
        latencies.clear()
        stamps.clear()
        sent, started, end = 0, time.monotonic(), time.monotonic() + timeout
        send()
        sent += 1
        while len(latencies) < frames and time.monotonic() < end:
            if sent < frames + 1:
                send()  # keep one frame waiting behind the one in inference
                sent += 1
            if not arrived.acquire(timeout=10.0):
                break
        elapsed = time.monotonic() - started
        values = np.asarray(latencies[:frames], dtype=np.float64)
        half = max(1, len(values) // 2)
        return NodeTiming(
            resolution, frame.shape[1], frame.shape[0], input_size, sent, len(values),
            round(len(values) / elapsed, 2),
            round(float(np.percentile(values, 50)), 1),
            round(float(np.percentile(values, 99)), 1),
            round(float(np.percentile(values[:half], 50)), 1),
            round(float(np.percentile(values[half:], 50)), 1))
    finally:
        client.destroy()
        spun.close()
        process.stop()


def _header():
    from std_msgs.msg import Header
    return Header(frame_id='bench_camera')


def format_node_table(timings: list[NodeTiming], segmenter_ms: dict[tuple[str, int], float]
                      ) -> str:
    """Table of the node cases with the ratio of node throughput to segmenter throughput."""
    lines = ['| frame | input | frames in/out | node fps | segmenter fps | (c)/(b) | '
             'latency p50 / p99 ms | p50 1st / 2nd half ms |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for t in timings:
        seg = segmenter_ms.get((t.resolution, t.input_size))
        seg_fps = 1000.0 / seg if seg else float('nan')
        lines.append(f'| {t.resolution} {t.width}x{t.height} | {t.input_size} | '
                     f'{t.frames_sent}/{t.frames_out} | {t.output_fps:.2f} | {seg_fps:.2f} | '
                     f'{t.output_fps / seg_fps:.3f} | {t.latency_p50_ms:.1f} / '
                     f'{t.latency_p99_ms:.1f} | {t.latency_p50_first_half_ms:.1f} / '
                     f'{t.latency_p50_second_half_ms:.1f} |')
    return '\n'.join(lines)
