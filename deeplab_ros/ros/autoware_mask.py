"""``segmentation/mask_rle``: the class mask in Autoware's format (``autoware_mask``).

The message is what ``autoware_tensorrt_yolox`` publishes on ``~/out/mask`` and
``segmentation_pointcloud_fusion`` reads: a ``sensor_msgs/Image`` with the frame's header,
``height`` and ``width``, ``encoding`` mono8 and ``step`` = width, whose ``data`` holds the
run-length pairs of the mask in Autoware's classes
(:func:`deeplab_ros.core.interop.autoware.encode_runs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

from deeplab_ros.core.interop.autoware import (
    autoware_lookup, check_override_classes, default_mapping, encode_runs, parse_overrides)
from deeplab_ros.core.labels import LabelSet
from deeplab_ros.ros import parameters as params


def autoware_table(node: Any, labels: LabelSet) -> np.ndarray | None:
    """The model-class -> Autoware-class table, or None when ``autoware_mask`` is off.

    The overrides are checked against the model's classes with the mode off too, so a
    misspelt class name is refused when it is set, not on the day the mode is turned on.

    Raises:
        ConfigurationError: The model's classes have no mapping (setting ``autoware_mask``)
            or an override is malformed or names a class the model lacks
            (``autoware_overrides``).
    """
    overrides = parse_overrides(list(params.value(node, 'autoware_overrides') or []))
    if not params.value(node, 'autoware_mask'):
        check_override_classes(labels, overrides)
        return None
    setting = 'autoware_mask' if default_mapping(labels) is None else 'autoware_overrides'
    return autoware_lookup(labels, overrides, setting=setting)


def autoware_mask_message(header: Any, labels: np.ndarray, table: np.ndarray) -> Image:
    """The frame's labels as Autoware's run-length mask message."""
    height, width = labels.shape[:2]
    return Image(header=header, height=height, width=width, encoding='mono8',
                 is_bigendian=0, step=width, data=encode_runs(table[labels]))
