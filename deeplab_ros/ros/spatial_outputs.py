"""What a processed frame gives its spatial subscribers: regions, labelled cloud, 3D boxes.

The node decides which outputs are wanted (subscribed) and hands in the frame's labels,
confidence and matched depth; :func:`spatial_messages` computes only what is wanted and
returns the messages by output name. :func:`frame_regions` finds a frame's regions once for
every output that numbers them (detections, 3D detections, the regions image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from deeplab_ros.core.labels import LabelSet
from deeplab_ros.core.spatial.geometry import (
    back_project, back_project_at, labelled_points, resize_nearest)
from deeplab_ros.core.spatial.regions import find_regions, regions_3d, RegionSet
from deeplab_ros.ros.depth_input import FrameDepth
from deeplab_ros.ros.spatial_messages import detections_2d, detections_3d, point_cloud

SPATIAL_OUTPUTS = ('points', 'detections', 'detections_3d')
#: The live parameters :class:`SpatialSettings` is resolved from.
SPATIAL_PARAMETERS = frozenset((
    'points_dense', 'points_stride', 'points_classes', 'detections_min_area_fraction',
    'detections_ignore_classes', 'detections_box_percentile', 'points_resolution',
    'points_class_id', 'points_probability'))


@dataclass(frozen=True)
class SpatialSettings:
    """The live parameters the spatial outputs use (class lists already resolved to ids)."""

    points_dense: bool = False
    points_stride: int = 1
    points_classes: Sequence[int] = ()
    min_area_fraction: float = 0.001
    ignore_classes: Sequence[int] = (0,)
    box_percentile: float = 5.0
    points_resolution: str = 'depth'
    points_class_id: bool = False
    points_probability: bool = False

    @classmethod
    def from_live(cls, live: Any, labels: LabelSet) -> 'SpatialSettings':
        """The settings of the node's live parameters, class names resolved to ids.

        Raises:
            InvalidSettingError: A class list names a class the model does not have.
        """
        return cls(points_dense=bool(live.points_dense), points_stride=int(live.points_stride),
                   points_classes=labels.class_ids(live.points_classes,
                                                   setting='points_classes'),
                   min_area_fraction=float(live.detections_min_area_fraction),
                   ignore_classes=labels.class_ids(live.detections_ignore_classes,
                                                   setting='detections_ignore_classes'),
                   box_percentile=float(live.detections_box_percentile),
                   points_resolution=str(live.points_resolution),
                   points_class_id=bool(live.points_class_id),
                   points_probability=bool(live.points_probability))


def frame_regions(labels: np.ndarray, confidence: np.ndarray | None,
                  settings: SpatialSettings) -> RegionSet:
    """The frame's regions, as the detections report them (without confidence: score 1)."""
    return find_regions(labels, confidence, min_area_fraction=settings.min_area_fraction,
                        ignore=settings.ignore_classes)


def spatial_messages(header: Any, labels: np.ndarray, confidence: np.ndarray | None,
                     depth: FrameDepth | None, palette_lut: np.ndarray,
                     settings: SpatialSettings, wanted: Iterable[str],
                     regions: RegionSet | None = None,
                     class_id_lut: np.ndarray | None = None) -> dict[str, Any]:
    """Messages of the ``wanted`` outputs (of :data:`SPATIAL_OUTPUTS`) for one frame.

    ``points`` and ``detections_3d`` need ``depth`` and are left out without it.
    ``regions``: the frame's regions when already found (:func:`frame_regions`).
    ``class_id_lut`` maps class ids to the cloud's ``class_id`` values (None: the class ids).
    """
    wanted = set(wanted)
    if depth is None:
        wanted -= {'points', 'detections_3d'}
    messages: dict[str, Any] = {}
    if wanted & {'detections', 'detections_3d'}:
        if regions is None:
            regions = frame_regions(labels, confidence, settings)
        if 'detections' in wanted:
            messages['detections'] = detections_2d(header, regions)
    if depth is None or not wanted & {'points', 'detections_3d'}:
        return messages
    points = back_project(depth.metres, depth.intrinsics)
    if 'points' in wanted:
        messages['points'] = point_cloud(header, labelled_cloud(
            labels, confidence, depth, points, palette_lut, settings, class_id_lut))
    if 'detections_3d' in wanted and regions is not None:
        located = regions_3d(regions, points, percentile=settings.box_percentile)
        messages['detections_3d'] = detections_3d(header, regions, located)
    return messages


def labelled_cloud(labels: np.ndarray, confidence: np.ndarray | None, depth: FrameDepth,
                   depth_points: np.ndarray, palette_lut: np.ndarray,
                   settings: SpatialSettings, class_id_lut: np.ndarray | None = None
                   ) -> np.ndarray:
    """The ``segmentation/points`` array of one frame, as the settings ask.

    At the depth image's resolution (labels resized to it, ``depth_points`` as they are) or,
    with ``points_resolution: mask``, one point per label pixel in the label image's
    row-major order (the depth under each pixel, along the pixel's own ray).
    """
    if not settings.points_probability:
        confidence = None
    if settings.points_resolution == 'mask':
        points = back_project_at(depth.metres, depth.intrinsics, labels.shape)
    else:
        points = depth_points
        labels = resize_nearest(labels, points.shape[:2])
        if confidence is not None:
            confidence = resize_nearest(confidence, points.shape[:2])
    if not settings.points_class_id:
        class_id_lut = None
    elif class_id_lut is None:
        class_id_lut = np.arange(256, dtype=np.uint8)  # the class ids themselves
    return labelled_points(points, labels, palette_lut, stride=settings.points_stride,
                           dense=settings.points_dense, keep_classes=settings.points_classes,
                           class_id_lut=class_id_lut, confidence=confidence)
