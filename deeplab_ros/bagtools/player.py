"""Play a rosbag2 bag into ROS topics with its recorded timing (rclpy publishers).

Each record is deserialized with rclpy's ``deserialize_message`` and published unchanged, so
header stamps stay as recorded. The pace follows the bag's receive timestamps, scaled by
``rate`` (2.0 plays twice as fast).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
import threading
import time

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.serialization import deserialize_message

from deeplab_ros.bagtools.info import _open_reader, BagRecord, iter_records
from deeplab_ros.bagtools.rclpy_types import message_class, playback_qos
from deeplab_ros.bagtools.writer import BagError


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """Parse ``old:=new`` topic remappings."""
    remaps: dict[str, str] = {}
    for item in items:
        old, separator, new = item.partition(':=')
        if not separator or not old or not new:
            raise BagError(f'Remap {item!r} is not of the form OLD:=NEW '
                           '(e.g. /camera/image_raw:=/front/image).')
        remaps[old] = new
    return remaps


@dataclass
class PlaybackStats:
    """What a :meth:`BagPlayer.play` call published."""

    published: dict[str, int] = field(default_factory=dict)
    loops: int = 0
    wall_duration_s: float = 0.0
    interrupted: bool = False

    @property
    def total(self) -> int:
        """Messages published on all topics."""
        return sum(self.published.values())


class BagPlayer:
    """Publishes a bag's messages on ``node`` with the bag's timing.

    Args:
        node: The rclpy node that owns the publishers (no spinning needed to publish).
        bag: Bag folder (or bare .mcap / .db3 file).
        rate: Playback speed multiplier (> 0).
        loop: Start again from the beginning when the bag ends (until stopped).
        remaps: ``{recorded_topic: published_topic}``.
        topics: Only play these recorded topics (all when empty).
    """

    def __init__(self, node: Node, bag: str | Path, *, rate: float = 1.0, loop: bool = False,
                 remaps: Mapping[str, str] | None = None, topics: Iterable[str] = ()) -> None:
        if not rate > 0:
            raise BagError(f'The playback rate must be positive, got {rate}.')
        self._node = node
        self._bag = Path(bag)
        self._rate = rate
        self._loop = loop
        self._remaps = dict(remaps or {})
        self._topics = tuple(topics)
        self._publishers: dict[str, Publisher] = {}
        self._classes: dict[str, type] = {}
        self._create_publishers()

    def _create_publishers(self) -> None:
        reader = _open_reader(self._bag)
        reader.open()
        try:
            connections = list(reader.connections)
        finally:
            reader.close()
        recorded = {c.topic for c in connections}
        missing = [t for t in self._topics if t not in recorded]
        if missing:
            raise BagError(f'{self._bag} has no topic {missing}; it holds {sorted(recorded)}.')
        for connection in connections:
            if self._topics and connection.topic not in self._topics:
                continue
            if connection.topic in self._publishers:
                continue
            message_type = message_class(connection.msgtype)
            qos = playback_qos(list(getattr(connection.ext, 'offered_qos_profiles', []) or []))
            target = self._remaps.get(connection.topic, connection.topic)
            self._classes[connection.topic] = message_type
            self._publishers[connection.topic] = self._node.create_publisher(
                message_type, target, qos)

    def wait_for_subscribers(self, timeout_s: float, topics: Iterable[str] = (), *,
                             count: int = 1) -> bool:
        """Wait until each published topic (or each of ``topics``) has ``count`` subscribers.

        Returns False when ``timeout_s`` passed first.
        """
        wanted = set(topics)
        publishers = [p for p in self._publishers.values()
                      if not wanted or p.topic_name in wanted]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() >= count for p in publishers):
                # The publisher sees the subscriber first; give the subscriber's side of
                # discovery a moment too, or the first messages can still be lost.
                time.sleep(0.5)
                return True
            time.sleep(0.05)
        return False

    def wait_for_all_acked(self, timeout_s: float) -> bool:
        """Wait until every subscriber acknowledged every message published reliably.

        Call it before exiting: a reliable message not yet delivered when the publisher goes
        away is lost. Returns False when ``timeout_s`` passed first (the wait is shared by all
        topics).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        for publisher in self._publishers.values():
            left = max(0.0, deadline - time.monotonic())
            if not publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
                return False
        return True

    def play(self, stop: threading.Event | None = None) -> PlaybackStats:
        """Publish the bag (repeatedly with ``loop``) until it ends or ``stop`` is set."""
        stop = stop or threading.Event()
        stats = PlaybackStats(published={p.topic_name: 0 for p in self._publishers.values()})
        started = time.monotonic()
        try:
            while not stop.is_set():
                self._play_once(stop, stats)
                stats.loops += 1
                if not self._loop:
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
        stats.interrupted = stats.interrupted or stop.is_set()
        stats.wall_duration_s = time.monotonic() - started
        return stats

    def _play_once(self, stop: threading.Event, stats: PlaybackStats) -> None:
        wall_start = time.monotonic()
        first_ns: int | None = None
        for record in self._records():
            if first_ns is None:
                first_ns = record.timestamp_ns
            due = wall_start + (record.timestamp_ns - first_ns) / 1e9 / self._rate
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            if stop.is_set():
                return
            message = deserialize_message(record.data, self._classes[record.topic])
            self._publish(record.topic, message)
            stats.published[self._publishers[record.topic].topic_name] += 1

    def _records(self) -> Iterator[BagRecord]:
        """The records to play, in the order played (hook for subclasses): the bag's."""
        return iter_records(self._bag, self._publishers)

    def _publish(self, topic: str, message: object) -> None:
        """Publish one deserialized message of recorded ``topic`` (hook for subclasses)."""
        self._publishers[topic].publish(message)
