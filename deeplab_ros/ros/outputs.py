"""Every topic the node publishes per camera: one table for the node, the bag tools and docs.

Each :class:`Output` names its topic (under the camera's prefix), message type, QoS and when
it is published: ``always`` (every frame, or latched on activate), ``subscribed`` (computed
only while someone subscribes), ``depth`` (with ``use_depth``, when subscribed) or
``autoware`` (with ``autoware_mask``, when subscribed).
An image output may have a ``<image>/compressed`` twin (sensor_msgs/CompressedImage, named
and formatted as image_transport's ``compressed`` plugin does), encoded while subscribed.
``/diagnostics`` is left out of the table on purpose: it is the node's, not a camera's, and
published on a timer rather than per frame.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from vision_msgs.msg import Classification, Detection2DArray, Detection3DArray, LabelInfo

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: When an output is published.
ALWAYS, SUBSCRIBED, WITH_DEPTH, AUTOWARE = 'always', 'subscribed', 'depth', 'autoware'
#: The kinds of output computed only while someone subscribes.
ON_SUBSCRIPTION = (SUBSCRIBED, WITH_DEPTH, AUTOWARE)


def own_qos(template: QoSProfile) -> QoSProfile:
    """Return a copy of ``template`` for one endpoint to own.

    rclpy applies QoS override parameters to the profile passed in, in place, so a shared one
    would carry an override of one topic to every other endpoint created with it (and to
    rclpy's module-level presets).
    """
    return copy.copy(template)


@dataclass(frozen=True)
class Output:
    """One published topic of a camera."""

    name: str                   # under segmentation/
    message_type: Any
    when: str                   # ALWAYS, SUBSCRIBED, WITH_DEPTH or AUTOWARE
    latched: bool = False       # transient local, depth 1; no QoS overrides
    #: A compressed twin: the image output it compresses, and the codec ('png', 'jpeg').
    compresses: str = ''
    codec: str = ''

    @property
    def topic(self) -> str:
        """The topic relative to the camera's prefix."""
        return f'segmentation/{self.name}'

    @property
    def type_name(self) -> str:
        """``package/Message``, as ROS tools and the docs write it."""
        return f'{self.message_type.__module__.split(".")[0]}/{self.message_type.__name__}'

    def qos(self) -> QoSProfile:
        """A profile of its own for this output's publisher."""
        return own_qos(LATCHED_QOS if self.latched else OUTPUT_QOS)


OUTPUTS: tuple[Output, ...] = (
    Output('labels', Image, ALWAYS),
    Output('classes', Classification, ALWAYS),
    Output('camera_info', CameraInfo, ALWAYS),
    Output('label_info', LabelInfo, ALWAYS, latched=True),
    Output('color', Image, SUBSCRIBED),
    Output('overlay', Image, SUBSCRIBED),
    Output('confidence', Image, SUBSCRIBED),
    Output('detections', Detection2DArray, SUBSCRIBED),
    Output('points', PointCloud2, WITH_DEPTH),
    Output('detections_3d', Detection3DArray, WITH_DEPTH),
    Output('mask_rle', Image, AUTOWARE),
    Output('regions', Image, SUBSCRIBED),
    # PNG is lossless: class ids and region numbers survive; JPEG for the pictures.
    Output('labels/compressed', CompressedImage, SUBSCRIBED, compresses='labels', codec='png'),
    Output('color/compressed', CompressedImage, SUBSCRIBED, compresses='color', codec='jpeg'),
    Output('overlay/compressed', CompressedImage, SUBSCRIBED, compresses='overlay',
           codec='jpeg'),
    Output('regions/compressed', CompressedImage, SUBSCRIBED, compresses='regions',
           codec='png'),
)
OUTPUT_BY_NAME = {output.name: output for output in OUTPUTS}
#: Image output name -> its ``/compressed`` twin.
COMPRESSED_TWIN = {output.compresses: output for output in OUTPUTS if output.compresses}


def outputs_for(use_depth: bool, autoware_mask: bool = False) -> tuple[Output, ...]:
    """The outputs a camera publishes.

    The depth ones only with ``use_depth``, Autoware's mask only with ``autoware_mask``.
    """
    return tuple(output for output in OUTPUTS
                 if (use_depth or output.when != WITH_DEPTH)
                 and (autoware_mask or output.when != AUTOWARE))
