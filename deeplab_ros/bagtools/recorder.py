"""Record ROS topics into a rosbag2 bag (rclpy subscriptions -> rosbags writer).

Subscriptions take the serialized CDR bytes straight from the middleware (``raw=True``: the
same bytes ``serialize_message`` produces, without a deserialize/serialize round trip).
Topics are subscribed as soon as a publisher appears, with a QoS that matches every offered
one (transient local when all publishers latch, so late recorders still get label info).
Each connection stores the type's full definition and the RIHS01 hash that the middleware
reports, so ``ros2 bag info`` / ``ros2 bag play`` accept the bag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
import threading

from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.timer import Timer

from deeplab_ros.bagtools.message_definitions import message_definition, MessageDefinitionError
from deeplab_ros.bagtools.rclpy_types import message_class, recording_qos, to_bag_qos
from deeplab_ros.bagtools.writer import BagError, open_writer

DISCOVERY_PERIOD_S = 0.1


@dataclass
class RecordingStats:
    """What a recorder wrote."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)  # topic -> why

    @property
    def total(self) -> int:
        """Messages written on all topics."""
        return sum(self.counts.values())


class BagRecorder:
    """Records ``topics`` (or every topic with ``all_topics``) seen by ``node`` into a bag.

    The caller spins ``node``; :attr:`done` is set once ``max_messages`` were written.
    Call :meth:`close` to finish the bag (metadata.yaml is written then).
    """

    def __init__(self, node: Node, output: str | Path, topics: Iterable[str] = (), *,
                 all_topics: bool = False, storage: str = 'mcap', version: int = 9,
                 max_messages: int | None = None) -> None:
        self._node = node
        self._topics = {self._absolute(t) for t in topics}
        if not self._topics and not all_topics:
            raise BagError('Name the topics to record (or record all topics).')
        self._all = all_topics
        self._max_messages = max_messages
        self._writer = open_writer(Path(output), storage=storage, version=version)
        self._writer.open()
        self._lock = threading.Lock()
        self._connections: dict[str, object] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._closed = False
        self.stats = RecordingStats(path=Path(output))
        self.done = threading.Event()
        self._timer: Timer = node.create_timer(DISCOVERY_PERIOD_S, self.discover)
        self.discover()

    def _absolute(self, topic: str) -> str:
        if topic.startswith('/'):
            return topic
        namespace = self._node.get_namespace().rstrip('/')
        return f'{namespace}/{topic}'

    @property
    def subscribed_topics(self) -> tuple[str, ...]:
        """Topics with an active recording subscription."""
        return tuple(sorted(self._subscriptions))

    def discover(self) -> None:
        """Subscribe to wanted topics that now have publishers."""
        if self._closed:
            return
        for topic, types in self._node.get_topic_names_and_types():
            if topic in self._subscriptions or topic in self.stats.skipped_topics:
                continue
            if not (self._all or topic in self._topics):
                continue
            if self._all and topic in ('/rosout', '/parameter_events'):
                continue
            self._subscribe(topic, types[0])

    def _subscribe(self, topic: str, msgtype: str) -> None:
        publishers = self._node.get_publishers_info_by_topic(topic)
        if not publishers:
            return
        try:
            msgdef, rihs01 = message_definition(msgtype)
            message_type = message_class(msgtype)
        except MessageDefinitionError as error:
            self.stats.skipped_topics[topic] = str(error)
            self._node.get_logger().error(f'Not recording {topic}: {error}')
            return
        offered_hash = str(getattr(publishers[0], 'topic_type_hash', '') or '')
        if offered_hash.startswith('RIHS01_') and offered_hash != rihs01:
            self._node.get_logger().warning(
                f'{topic}: the publisher\'s {msgtype} hash {offered_hash} differs from the '
                f'definition found here ({rihs01}); recording with the publisher\'s hash.')
            rihs01 = offered_hash
        offered = [p.qos_profile for p in publishers]
        with self._lock:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                offered_qos_profiles=[to_bag_qos(q) for q in offered])
            self.stats.counts[topic] = 0
        self._subscriptions[topic] = self._node.create_subscription(
            message_type, topic, lambda data, t=topic: self._on_message(t, data),
            recording_qos(offered), raw=True)

    def _on_message(self, topic: str, data: bytes) -> None:
        stamp_ns = self._node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed or self.done.is_set():
                return
            self._writer.write(self._connections[topic], stamp_ns, data)
            self.stats.counts[topic] += 1
            if self._max_messages is not None and self.stats.total >= self._max_messages:
                self.done.set()

    def close(self) -> RecordingStats:
        """Stop recording and finish the bag; safe to call twice."""
        with self._lock:
            if self._closed:
                return self.stats
            self._closed = True
        self._node.destroy_timer(self._timer)
        for subscription in self._subscriptions.values():
            self._node.destroy_subscription(subscription)
        self._subscriptions.clear()
        with self._lock:
            self._writer.close()
        return self.stats
