"""Helpers for tests with real rclpy and DDS: an in-process node, a second node, collectors.

The segmentation node under test runs with its own executor thread (as in its own process);
the test talks to it from a second node over DDS, through the real lifecycle and parameter
services and topics. Both live in one rclpy context (one DDS participant) for the whole test
session: creating and destroying a participant per test made discovery between them fail
intermittently, a property of many short-lived participants in one process, not of the node.
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass, field
import gc
import itertools
import os
import threading
import time
from typing import Any, Iterator

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from deeplab_ros.ros.image_codec import (
    decode_depth_msg, decode_image_msg, decode_mono8_msg, encode_rgb8)
from deeplab_ros.ros.lifecycle_client import LifecycleClient
from deeplab_ros.ros.segmentation_node import NODE_NAME, SegmentationNode
from deeplab_ros.ros.spinning import Spinner, wait_until
from deeplab_ros.ros.stamps import stamp_from_ns

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: /rosout is transient local (depth 1000): a late subscriber still gets recent entries.
ROSOUT = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL)


_CONTEXT: Context | None = None
_NAMES = itertools.count()


def in_process_domain_id() -> int:
    """The DDS domain of the in-process nodes: not the one node processes and tools use.

    A node process started by a later test has the same name as the in-process nodes; if both
    shared a domain, that process's clients could match what an earlier in-process node left
    behind in discovery. Node processes, the ROS CLI and the tools use ``ROS_DOMAIN_ID``.
    """
    return (int(os.environ.get('ROS_DOMAIN_ID', '0')) + 110) % 232


def shared_context() -> Context:
    """The session's rclpy context (created on first use, shut down at exit)."""
    global _CONTEXT
    if _CONTEXT is None or not _CONTEXT.ok():
        _CONTEXT = Context()
        rclpy.init(args=[], context=_CONTEXT, domain_id=in_process_domain_id())
        atexit.register(lambda context=_CONTEXT: context.ok() and rclpy.shutdown(
            context=context))
    return _CONTEXT


class InProcessNode:
    """The segmentation node in its own context, spun by a daemon thread."""

    def __init__(self, parameters: dict[str, Any] | None = None, namespace: str = '') -> None:
        self.context = shared_context()
        overrides = [Parameter(name, value=value) for name, value in (parameters or {}).items()]
        self.node = SegmentationNode(context=self.context, namespace=namespace,
                                     parameter_overrides=overrides)
        self._spinner = Spinner(self.node)

    def close(self) -> None:
        """Stop the worker and the executor, destroy the node."""
        self._spinner.stop()  # as the executable: stop spinning, then destroy_node releases
        self.node.destroy_node()
        # rcl unregisters a node name's /rosout publisher when a node of that name is
        # destructed: collected now, not while the next node of that name runs (the autouse
        # fixture of test/node collects what the test itself still held).
        del self.node
        gc.collect()


@dataclass
class Collector:
    """Messages received on one topic."""

    messages: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: Any) -> None:
        """Subscription callback."""
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        """How many arrived so far."""
        with self.lock:
            return len(self.messages)

    def snapshot(self) -> list[Any]:
        """A copy of the messages so far."""
        with self.lock:
            return list(self.messages)

    def clear(self) -> None:
        """Forget what arrived."""
        with self.lock:
            self.messages.clear()

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least ``count`` messages arrived."""
        return wait_until(lambda: self.count() >= count, timeout)


class RosTester:
    """The test's own node: lifecycle client, publishers, collectors, parameter client."""

    def __init__(self, target: str = '/' + NODE_NAME) -> None:
        self.node = Node(f'deeplab_test_client_{next(_NAMES)}', context=shared_context())
        self._spinner = Spinner(self.node)
        self.target = target
        self.lifecycle = LifecycleClient(self.node, target)
        self._publishers: dict[str, Any] = {}

    def collect(self, topic: str, message_type: Any, qos: QoSProfile = RELIABLE) -> Collector:
        """Subscribe to ``topic`` and return its collector."""
        collector = Collector()
        self.node.create_subscription(message_type, topic, collector.add, qos)
        return collector

    def publisher(self, topic: str, message_type: Any = Image,
                  qos: QoSProfile = RELIABLE) -> Any:
        """A (cached) publisher on ``topic``."""
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(message_type, topic, qos)
        return self._publishers[topic]

    def wait_for_subscriber(self, topic: str, timeout: float = 10.0) -> bool:
        """Wait until the node under test subscribes to ``topic``."""
        publisher = self.publisher(topic)
        return wait_until(lambda: publisher.get_subscription_count() > 0, timeout)

    def set_parameters(self, values: dict[str, Any], timeout: float = 10.0) -> list[Any]:
        """Set parameters of the node under test over its real service; returns results."""
        from rcl_interfaces.srv import SetParameters

        client = self.node.create_client(SetParameters, f'{self.target}/set_parameters')
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError('set_parameters service did not appear')
            time.sleep(0.5)  # let discovery match the reply path too
            request = SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
            future = client.call_async(request)
            if not wait_until(future.done, timeout):
                raise TimeoutError('set_parameters did not answer')
            return list(future.result().results)
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        """Destroy the node and its context."""
        self.lifecycle.destroy()
        self._spinner.stop()
        self.node.destroy_node()


@contextlib.contextmanager
def node_under_test(parameters: dict[str, Any] | None = None, namespace: str = '',
                    target: str = '/' + NODE_NAME) -> Iterator[tuple[InProcessNode, RosTester]]:
    """The segmentation node and the test's own node, both closed on exit."""
    node = InProcessNode(parameters, namespace=namespace)
    tester = RosTester(target)
    try:
        yield node, tester
    finally:
        tester.close()
        node.close()


def image_message(rgb: np.ndarray, *, frame_id: str = 'camera', stamp_ns: int = 0) -> Image:
    """An rgb8 Image with the given header."""
    return encode_rgb8(rgb, Header(frame_id=frame_id, stamp=stamp_from_ns(stamp_ns)))


def decoded(message: Image) -> np.ndarray:
    """An output image as an array (mono8 -> HxW, 16UC1 -> HxW uint16, rgb8 -> HxWx3)."""
    if message.encoding == '16UC1':
        return decode_depth_msg(message)
    if message.encoding == 'mono8':
        return decode_mono8_msg(message)
    return decode_image_msg(message)
