"""One camera of the node (its endpoints and camera_info) and the frame it has waiting.

A :class:`CameraStream` creates and destroys its own endpoints on the node it is given
(publishers at configure, subscriptions at activate) and answers what the node asks per
frame: is an output subscribed, which camera_info goes with this header.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from deeplab_ros.ros.image_codec import decode_compressed_image_msg, decode_image_msg
from deeplab_ros.ros.outputs import outputs_for, own_qos
from deeplab_ros.streaming.stamp_matcher import StampMatcher

Callback = Callable[['CameraStream', Any], None]


@dataclass(eq=False)  # hashable by identity: the frame scheduler's key
class CameraStream:
    """One camera: its topics, publishers and subscriptions."""

    name: str
    prefix: str
    publishers: dict[str, Any] = field(default_factory=dict)
    subscriptions: list[Any] = field(default_factory=list)
    camera_info: CameraInfo | None = None
    #: The last few camera_info messages: a frame takes the one with its own stamp if any.
    recent_camera_info: deque = field(default_factory=lambda: deque(maxlen=8))
    depth: StampMatcher[Image] | None = None
    last_received: float = 0.0  # time.monotonic() of the newest frame (0 = none yet)

    def topic(self, suffix: str) -> str:
        """Relative topic name of this camera."""
        return f'{self.prefix}{suffix}'

    def create_publishers(self, node: LifecycleNode, use_depth: bool,
                          depth_queue_size: int, autoware_mask: bool = False) -> None:
        """One lifecycle publisher per output (of :mod:`deeplab_ros.ros.outputs`)."""
        overriding = QoSOverridingOptions.with_default_policies()
        for output in outputs_for(use_depth, autoware_mask):
            options = {} if output.latched else {'qos_overriding_options': overriding}
            self.publishers[output.name] = node.create_lifecycle_publisher(
                output.message_type, self.topic(output.topic), output.qos(), **options)
        if use_depth:
            self.depth = StampMatcher(depth_queue_size)

    def subscribe(self, node: LifecycleNode, *, compressed: bool, on_image: Callback,
                  on_depth: Callback) -> None:
        """Subscribe to the image (raw or compressed), camera_info and, with depth, depth."""
        overriding = QoSOverridingOptions.with_default_policies()

        def create(message_type: Any, topic: str, callback: Callback) -> None:
            self.subscriptions.append(node.create_subscription(
                message_type, topic, lambda message: callback(self, message),
                own_qos(qos_profile_sensor_data), qos_overriding_options=overriding))

        if compressed:
            # image_transport's naming: the resolved (remapped) base topic + suffix.
            create(CompressedImage, node.resolve_topic_name(self.topic('image')) + '/compressed',
                   on_image)
        else:
            create(Image, self.topic('image'), on_image)
        create(CameraInfo, self.topic('camera_info'),
               lambda camera, message: camera.on_camera_info(message))
        if self.depth is not None:
            create(Image, self.topic('depth'), on_depth)

    def image_topic(self, compressed: bool) -> str:
        """The relative image topic as subscribed (for error messages)."""
        return self.topic('image/compressed' if compressed else 'image')

    def on_camera_info(self, message: CameraInfo) -> None:
        """Keep a received camera_info."""
        self.recent_camera_info.append(message)
        self.camera_info = message

    def camera_info_for(self, header: Any) -> CameraInfo | None:
        """The received camera_info stamped like ``header``, else the newest (None: none yet)."""
        return next((info for info in reversed(self.recent_camera_info)
                     if info.header.stamp == header.stamp), self.camera_info)

    def subscribed(self, output: str) -> bool:
        """True when ``output`` has a publisher and someone subscribes to it."""
        publisher = self.publishers.get(output)
        return publisher is not None and publisher.get_subscription_count() > 0

    def publish(self, output: str, message: Any) -> None:
        """Publish ``message`` on ``output``."""
        self.publishers[output].publish(message)

    def unsubscribe(self, node: LifecycleNode) -> None:
        """Destroy the subscriptions and forget buffered depth images."""
        for subscription in self.subscriptions:
            node.destroy_subscription(subscription)
        self.subscriptions = []
        if self.depth is not None:
            self.depth.clear()

    def destroy_publishers(self, node: LifecycleNode) -> None:
        """Destroy the publishers (through the lifecycle API)."""
        for publisher in self.publishers.values():
            node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}


@dataclass
class PendingFrame:
    """The newest frame of a camera, waiting for inference: the message, decoded by the worker.

    A raw Image had its fields checked at receipt (:func:`check_image_msg`); the worker
    decodes and converts both kinds with :meth:`decode`.
    """

    message: Image | CompressedImage
    received: float  # time.monotonic() at receipt

    @property
    def header(self) -> Any:
        """The message's header: every output of the frame carries it."""
        return self.message.header

    @property
    def compressed(self) -> bool:
        """True for a sensor_msgs/CompressedImage."""
        return isinstance(self.message, CompressedImage)

    @property
    def kind(self) -> str:
        """What the message is, for error messages."""
        return 'compressed image' if self.compressed else 'image'

    def decode(self) -> np.ndarray:
        """HxWx3 uint8 RGB; raises ImageDecodeError (an InputError) when it cannot."""
        if self.compressed:
            return decode_compressed_image_msg(self.message)
        return decode_image_msg(self.message)
