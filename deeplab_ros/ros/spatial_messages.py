"""Builders for the spatial outputs: labelled PointCloud2 and vision_msgs detections."""

from __future__ import annotations

import array
from typing import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from vision_msgs.msg import (
    Detection2D, Detection2DArray, Detection3D, Detection3DArray, ObjectHypothesisWithPose)

from deeplab_ros.core.spatial.geometry import POINT_DTYPE
from deeplab_ros.core.spatial.regions import Region3D, RegionSet

#: PointField datatype of each numpy field type of a labelled point.
_FIELD_TYPES = {np.dtype('<f4'): PointField.FLOAT32, np.dtype('u1'): PointField.UINT8}


def point_fields(dtype: np.dtype) -> list[PointField]:
    """The PointCloud2 fields of a labelled point dtype (``geometry.point_dtype``)."""
    return [PointField(name=name, offset=offset, datatype=_FIELD_TYPES[field_type], count=1)
            for name, (field_type, offset) in dtype.fields.items()]


#: PointCloud2 fields of :data:`POINT_DTYPE`.
POINT_FIELDS: tuple[PointField, ...] = tuple(point_fields(POINT_DTYPE))


def point_cloud(header: Header, points: np.ndarray) -> PointCloud2:
    """A PointCloud2 of a labelled point array: HxW = organised, N = dense.

    The fields are those of the array's dtype (:data:`POINT_DTYPE`, plus ``class_id`` and
    ``probability`` when present).
    """
    if points.dtype.names is None or points.dtype.names[:5] != POINT_DTYPE.names:
        raise ValueError(f'points must have the fields of {POINT_DTYPE}, got {points.dtype}')
    organised = points.ndim == 2
    height, width = points.shape if organised else (1, points.shape[0])
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(points).view(np.uint8).data)
    step = points.dtype.itemsize
    return PointCloud2(header=header, height=height, width=width,
                       fields=point_fields(points.dtype), is_bigendian=False, point_step=step,
                       row_step=step * width, data=data, is_dense=not organised)


def _hypothesis(class_id: int, score: float) -> ObjectHypothesisWithPose:
    result = ObjectHypothesisWithPose()
    result.hypothesis.class_id = str(class_id)
    result.hypothesis.score = float(score)
    return result


def detections_2d(header: Header, regions: RegionSet) -> Detection2DArray:
    """Build one Detection2D per region.

    Each has the region's box in the frame's pixels (pixel-edge coordinates), one hypothesis
    (class id as in label_info, mean top-class probability) and id = the region's index.
    """
    message = Detection2DArray(header=header)
    for index, region in enumerate(regions.regions):
        detection = Detection2D(header=header, id=str(index))
        center_x, center_y = region.center
        detection.bbox.center.position.x = center_x
        detection.bbox.center.position.y = center_y
        detection.bbox.size_x = float(region.width)
        detection.bbox.size_y = float(region.height)
        detection.results.append(_hypothesis(region.class_id, region.score))
        message.detections.append(detection)
    return message


def detections_3d(header: Header, regions: RegionSet, located: Sequence[Region3D]
                  ) -> Detection3DArray:
    """One Detection3D per located region (camera optical frame, metres).

    ``bbox``: the robust axis-aligned box (centre, edge lengths, identity orientation);
    the hypothesis's pose: the region's centroid. ``id`` matches the region's Detection2D.
    """
    message = Detection3DArray(header=header)
    for item in located:
        region = regions.regions[item.index]
        detection = Detection3D(header=header, id=str(item.index))
        center, size = detection.bbox.center, detection.bbox.size
        center.position.x, center.position.y, center.position.z = item.box_center
        center.orientation.w = 1.0
        size.x, size.y, size.z = item.box_size
        hypothesis = _hypothesis(region.class_id, region.score)
        position = hypothesis.pose.pose.position
        position.x, position.y, position.z = item.centroid
        hypothesis.pose.pose.orientation.w = 1.0
        detection.results.append(hypothesis)
        message.detections.append(detection)
    return message
