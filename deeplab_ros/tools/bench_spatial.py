"""What the spatial outputs cost per frame at VGA: regions, labelled cloud, 3D boxes, messages.

Runs on a real RGB-D frame of the shared data (640x480 colour + registered uint16 depth in
millimetres, camera.yaml intrinsics) with the labels and confidence of the benchmark's own
segmenter, and reports the median time of each step (``deeplab-ros-bench`` prints the table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import cv2
import numpy as np
import yaml

from deeplab_ros.tools.bench_tables import alternating_medians, text_table

RGBD_FRAME = 'data/rgbd/color/1.png'
RGBD_DEPTH = 'data/rgbd/depth/1.pgm'
RGBD_CAMERA = 'data/rgbd/camera.yaml'


@dataclass
class SpatialTiming:
    """Median milliseconds of one step."""

    step: str
    ms: float
    detail: str = ''

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return asdict(self)


def _median_ms(function: Callable[[], object], iterations: int, warmup: int) -> float:
    return alternating_medians([function], iterations=iterations, warmup=warmup)[0]


def run_spatial(segmenter, *, iterations: int, warmup: int) -> list[SpatialTiming]:
    """Time every spatial step on the shared RGB-D frame with ``segmenter``'s labels."""
    from deeplab_ros.core.spatial.geometry import (
        back_project, depth_in_metres, labelled_points, PinholeIntrinsics)
    from deeplab_ros.core.spatial.regions import find_regions, regions_3d
    from deeplab_ros.core.weights.locations import shared_path

    bgr = cv2.imread(str(shared_path(RGBD_FRAME)), cv2.IMREAD_COLOR)
    depth_mm = cv2.imread(str(shared_path(RGBD_DEPTH)), cv2.IMREAD_UNCHANGED)
    if bgr is None or depth_mm is None:
        raise OSError('cannot read the shared RGB-D frame')
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    camera = yaml.safe_load(shared_path(RGBD_CAMERA).read_text())
    intrinsics = PinholeIntrinsics(fx=camera['fx'], fy=camera['fy'], cx=camera['cx'],
                                   cy=camera['cy'], width=camera['width'],
                                   height=camera['height'])
    plain = _median_ms(lambda: segmenter.segment(rgb), iterations, warmup)
    with_confidence = _median_ms(lambda: segmenter.segment(rgb, confidence=True), iterations,
                                 warmup)
    result = segmenter.segment(rgb, confidence=True)
    labels, confidence = result.labels, result.confidence
    palette = segmenter.labels.palette_lut()
    regions = find_regions(labels, confidence, min_area_fraction=0.001, ignore=(0,))
    points = back_project(depth_in_metres(depth_mm), intrinsics)
    organised = labelled_points(points, labels, palette)
    dense = labelled_points(points, labels, palette, dense=True)
    steps: list[tuple[str, Callable[[], object], str]] = [
        ('regions (2D)', lambda: find_regions(labels, confidence, min_area_fraction=0.001,
                                              ignore=(0,)),
         f'{len(regions.regions)} regions'),
        ('depth -> points', lambda: back_project(depth_in_metres(depth_mm), intrinsics),
         f'{depth_mm.shape[1]}x{depth_mm.shape[0]}'),
        ('cloud organised', lambda: labelled_points(points, labels, palette),
         f'{organised.size} points'),
        ('cloud dense', lambda: labelled_points(points, labels, palette, dense=True),
         f'{dense.size} points'),
        ('cloud stride 2', lambda: labelled_points(points, labels, palette, stride=2), ''),
        ('regions 3D', lambda: regions_3d(regions, points), ''),
    ]
    timings = [SpatialTiming('segment, no confidence', plain, 'reference'),
               SpatialTiming('segment + confidence', with_confidence,
                             f'+{with_confidence - plain:.1f} ms for region scores')]
    timings += [SpatialTiming(name, _median_ms(function, iterations, warmup), detail)
                for name, function, detail in steps]
    timings += _message_timings(rgb, labels, confidence, depth_mm, intrinsics, palette,
                                iterations, warmup)
    return timings


def _message_timings(rgb, labels, confidence, depth_mm, intrinsics, palette, iterations: int,
                     warmup: int) -> list[SpatialTiming]:
    """The node's whole spatial step (all three outputs, messages built), when ROS is here."""
    try:
        from std_msgs.msg import Header

        from deeplab_ros.core.spatial.geometry import depth_in_metres
        from deeplab_ros.ros.depth_input import FrameDepth
        from deeplab_ros.ros.spatial_outputs import (
            SPATIAL_OUTPUTS, spatial_messages, SpatialSettings)
    except ImportError:
        return []
    header = Header(frame_id='camera')

    def everything() -> None:
        depth = FrameDepth(depth_in_metres(depth_mm), intrinsics)
        spatial_messages(header, labels, confidence, depth, palette, SpatialSettings(),
                         SPATIAL_OUTPUTS)
    return [SpatialTiming('node spatial step', _median_ms(everything, iterations, warmup),
                          'points + detections + detections_3d, messages built')]


def format_spatial_table(timings: list[SpatialTiming]) -> str:
    """Human-readable table."""
    return text_table([('step', '<24'), ('ms', '>8.2f'), ('detail', '')],
                      [[t.step, t.ms, t.detail] for t in timings])
