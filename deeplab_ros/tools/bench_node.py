"""The node end to end for ``deeplab-ros-bench``: its own process, real frames over DDS.

This process publishes a real photo (as rgb8, stamped with the wall clock) to the node
process as fast as the node takes them — always one frame waiting behind the one being
inferred, so the node never idles and never queues — and measures the label images coming
back: delivered rate, latency from the input stamp to receipt (p50/p99) and frames the node
dropped. Both processes use the large-image Fast DDS profile shipped in config/.

Node throughput is compared with the segmenter's in the same run: the frames go through in
blocks, and after every block of the node this process times the same number of frames
through its own segmenter (the node idles meanwhile). Alternating blocks expose both to the
same machine load, so the ratio holds on a shared machine whose speed drifts over a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import os
from pathlib import Path
import queue
import statistics
import time
from typing import Callable

import numpy as np

from deeplab_ros.ros.dds_profile import large_image_dds_env
from deeplab_ros.ros.stamps import stamp_from_ns, stamp_ns

ARRIVAL_TIMEOUT_SECONDS = 10.0


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
    segmenter_fps: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_p50_first_half_ms: float
    latency_p50_second_half_ms: float
    block_ratios: list[float] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        """Frames published but not segmented (the node keeps only the newest)."""
        return self.frames_sent - self.frames_out

    @property
    def ratio(self) -> float:
        """Node throughput over segmenter throughput, pooled over all blocks."""
        return self.output_fps / self.segmenter_fps

    @property
    def block_ratio_median(self) -> float:
        """Median of the per-block ratios (NaN without blocks)."""
        return statistics.median(self.block_ratios) if self.block_ratios else float('nan')

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return {**asdict(self), 'dropped': self.dropped, 'ratio': round(self.ratio, 4),
                'block_ratio_median': round(self.block_ratio_median, 4)}


def use_large_image_profile() -> dict[str, str]:
    """Apply the large-image Fast DDS profile and localhost discovery; return the environment.

    For this process and its children (see :func:`large_image_dds_env`).
    """
    large_image_dds_env(os.environ)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    return dict(os.environ)


def block_sizes(frames: int, block_frames: int) -> list[int]:
    """Split ``frames`` into blocks of ``block_frames`` (>= 2); a short rest joins the last."""
    size = max(2, block_frames)
    full, rest = divmod(max(2, frames), size)
    blocks = [size] * full
    if rest and (rest < 2 or not blocks):
        blocks = blocks[:-1] + [(blocks[-1] if blocks else 0) + rest]
    elif rest:
        blocks.append(rest)
    return blocks


class _LabelStream:
    """Publishes frames to the node and collects the label images it sends back."""

    def __init__(self, node, frame: np.ndarray) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from deeplab_ros.ros.image_codec import encode_rgb8

        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.publisher = node.create_publisher(Image, '/image', qos)
        # (input stamp ns, latency ms, monotonic arrival s) of every label image received
        self._arrivals: queue.Queue[tuple[int, float, float]] = queue.Queue()
        self._last_stamp = 0
        self.latencies_ms: list[float] = []
        node.create_subscription(Image, '/segmentation/labels', self._on_labels, qos)
        self._template = encode_rgb8(frame, Header(frame_id='bench_camera'))

    def _on_labels(self, message) -> None:
        now = time.time_ns()
        stamp = stamp_ns(message.header)
        self._arrivals.put((stamp, (now - stamp) / 1e6, time.monotonic()))

    def wait_for_node(self, timeout: float = 30.0) -> None:
        """Wait until the node's subscription is matched (and a little for the reverse)."""
        deadline = time.monotonic() + timeout
        while self.publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)

    def send(self) -> int:
        """Publish the frame stamped with the current wall-clock time; returns the stamp."""
        stamp = max(time.time_ns(), self._last_stamp + 1)  # unique: it names the frame
        self._last_stamp = stamp
        self._template.header.stamp = stamp_from_ns(stamp)
        self.publisher.publish(self._template)
        return stamp

    def run_block(self, frames: int, second_frame_delay: float) -> tuple[int, int, float]:
        """Get ``frames`` (>= 2) label images back, a frame always waiting behind inference.

        A label image's stamp names its frame, and the node keeps only the newest frame, so
        frames sent before it and never returned were replaced. After every label image the
        bench tops the frames in flight up to two. When none is in flight (block start, or
        after a replacement) the second follows the first after ``second_frame_delay``: sent
        back to back to an idle node, it would replace the first. The clock runs from the
        first label image to the last, when the node always has a frame waiting.

        Returns (frames sent, label images received, seconds from first to last label image).
        """
        order: dict[int, int] = {}  # stamp -> position in this block

        def top_up(newest: int, received: int) -> None:
            in_flight = len(order) - 1 - newest  # sent after the newest label image's frame
            idle = in_flight == 0
            while in_flight < 2 and received + in_flight < frames:
                if idle and in_flight == 1:
                    time.sleep(second_frame_delay)
                order[self.send()] = len(order)
                in_flight += 1

        received, newest, first_arrival, last_arrival = 0, -1, 0.0, 0.0
        top_up(newest, received)
        while received < frames:
            try:
                stamp, latency_ms, arrival = self._arrivals.get(
                    timeout=ARRIVAL_TIMEOUT_SECONDS)
            except queue.Empty:
                break  # frames were lost: the block ends short
            if stamp not in order:
                continue  # not one of this block's frames
            received, newest = received + 1, order[stamp]
            self.latencies_ms.append(latency_ms)
            if received == 1:
                first_arrival = arrival
            last_arrival = arrival
            top_up(newest, received)
        return len(order), received, max(1e-9, last_arrival - first_arrival)


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile rounded to 0.1 (NaN for no values)."""
    return round(float(np.percentile(values, q)), 1) if values else float('nan')


def _time_segmenter(segment: Callable[[], object], frames: int) -> float:
    started = time.perf_counter()
    for _ in range(frames):
        segment()
    return time.perf_counter() - started


def run_node_case(frame: np.ndarray, resolution: str, input_size: int, *, frames: int,
                  segment: Callable[[], object], weights: str, device: str, block_frames: int = 10,
                  log_path: Path | None = None, backend: str = 'auto') -> NodeTiming:
    """Start the node process and alternate blocks of node and segmenter frames.

    Args:
        frame: The HxWx3 uint8 RGB frame to send.
        resolution: Name of the frame size (for the report).
        input_size: Network input side for the node.
        frames: Frames through the node (and through the segmenter) in all.
        segment: Segments ``frame`` once in this process (and waits for the device).
        weights: The node's ``weights`` parameter.
        device: The node's ``device`` parameter.
        block_frames: Frames per block: node and segmenter blocks alternate.
        log_path: Where the node's output goes (discarded when None).
        backend: The node's ``backend`` parameter.
    """
    from deeplab_ros.ros.lifecycle_client import LifecycleClient
    from deeplab_ros.ros.node_process import default_params_file, node_command, NodeProcess
    from deeplab_ros.ros.spinning import SpunNode

    env = use_large_image_profile()
    parameters = {'input_size': input_size, 'weights': weights, 'device': device,
                  'backend': backend,
                  'publish_color': False, 'publish_overlay': False,
                  'diagnostics_period': 0.0}
    process = NodeProcess(node_command(default_params_file(), parameters=parameters), env=env,
                          log_path=log_path)
    spun = SpunNode('deeplab_bench_client')
    client = LifecycleClient(spun.node, '/deeplab_segmentation', alive=process.running)
    try:
        client.bring_up(timeout=180.0)
        stream = _LabelStream(spun.node, frame)
        stream.wait_for_node()
        segment_seconds = _time_segmenter(segment, 3) / 3
        # A quarter of an inference: surely past the node's hand-over, far from a bubble.
        delay = min(0.01, max(0.0005, segment_seconds / 4))
        stream.run_block(5, delay)  # untimed: first frames pay one-off costs
        stream.latencies_ms.clear()
        sent_total = received_total = node_frames = segmenter_frames = 0
        node_seconds = segmenter_seconds = 0.0
        block_ratios = []
        for size in block_sizes(frames, block_frames):
            sent, received, seconds = stream.run_block(size, delay)
            sent_total, received_total = sent_total + sent, received_total + received
            timed_frames = received - 1  # label images after the first one of the block
            segmenter_block = _time_segmenter(segment, size)
            if timed_frames > 0:
                node_seconds += seconds
                node_frames += timed_frames
                segmenter_seconds += segmenter_block
                segmenter_frames += size
                block_ratios.append(round((timed_frames / seconds) /
                                          (size / segmenter_block), 4))
        latencies = stream.latencies_ms
        half = max(1, len(latencies) // 2)
        return NodeTiming(
            resolution, frame.shape[1], frame.shape[0], input_size, sent_total,
            received_total, round(node_frames / max(node_seconds, 1e-9), 3),
            round(segmenter_frames / max(segmenter_seconds, 1e-9), 3),
            _percentile(latencies, 50), _percentile(latencies, 99),
            _percentile(latencies[:half], 50), _percentile(latencies[half:], 50), block_ratios)
    finally:
        client.destroy()
        spun.close()
        process.stop()


def format_node_table(timings: list[NodeTiming]) -> str:
    """Table of the node cases with the ratio of node throughput to segmenter throughput."""
    lines = ['| frame | input | frames in/out | node fps | segmenter fps | (c)/(b) | '
             '(c)/(b) per block: median [min, max] | latency p50 / p99 ms | '
             'p50 1st / 2nd half ms |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for t in timings:
        ratios = t.block_ratios or [float('nan')]
        lines.append(f'| {t.resolution} {t.width}x{t.height} | {t.input_size} | '
                     f'{t.frames_sent}/{t.frames_out} | {t.output_fps:.2f} | '
                     f'{t.segmenter_fps:.2f} | {t.ratio:.3f} | '
                     f'{t.block_ratio_median:.3f} [{min(ratios):.3f}, '
                     f'{max(ratios):.3f}] | {t.latency_p50_ms:.1f} / {t.latency_p99_ms:.1f} | '
                     f'{t.latency_p50_first_half_ms:.1f} / '
                     f'{t.latency_p50_second_half_ms:.1f} |')
    return '\n'.join(lines)
