"""Read rosbag2 bags and ROS 1 ``.bag`` files.

rosbag2 bags may use mcap or sqlite3 storage, metadata version 8 or 9 (e.g. from
``ros2 bag record``); the messages of ROS 1 bags are converted to their ROS 2 form (CDR; e.g.
the Header's ``seq`` dropped) with ``rosbags``' type migration.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.convert.converter import migrate_bytes
from rosbags.interfaces import Connection
from rosbags.rosbag1 import Reader as Rosbag1Reader
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore
import yaml

from deeplab_ros.bagtools.message_definitions import ensure_type, typestore
from deeplab_ros.bagtools.sources import BagError


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag."""

    name: str
    msgtype: str
    message_count: int
    type_hash: str


@dataclass(frozen=True)
class BagInfo:
    """What ``deeplab-ros-bag info`` prints."""

    path: Path
    version: int | None
    storage: str
    start_ns: int
    duration_ns: int
    message_count: int
    topics: tuple[TopicSummary, ...]

    def topic(self, name: str) -> TopicSummary:
        """The summary of topic ``name`` (KeyError naming the topics present otherwise)."""
        for summary in self.topics:
            if summary.name == name:
                return summary
        raise KeyError(f'Topic {name!r} is not in {self.path}; it holds '
                       f'{[t.name for t in self.topics]}.')

    def format(self) -> str:
        """A human-readable summary in the spirit of ``ros2 bag info``."""
        lines = [
            f'Bag:           {self.path}',
            f'Version:       {self.version if self.version is not None else "unknown"}',
            f'Storage:       {self.storage}',
            f'Duration:      {self.duration_ns / 1e9:.3f} s',
            f'Start:         {self.start_ns / 1e9:.3f} s since the epoch',
            f'Messages:      {self.message_count}',
            'Topics:',
        ]
        width = max((len(t.name) for t in self.topics), default=0)
        for summary in self.topics:
            lines.append(f'  {summary.name:<{width}}  {summary.message_count:>7}  '
                         f'{summary.msgtype}  {summary.type_hash or "(no type hash)"}')
        return '\n'.join(lines)


def is_ros1_bag(path: str | Path) -> bool:
    """True for a ROS 1 bag file (``.bag``)."""
    path = Path(path)
    return path.is_file() and path.suffix == '.bag'


def _open_reader(path: Path) -> Reader | Rosbag1Reader:
    if not path.exists():
        raise BagError(f'No bag at {path}: give a rosbag2 folder (with metadata.yaml), '
                       'a .mcap / .db3 file or a ROS 1 .bag file.')
    return Rosbag1Reader(path) if is_ros1_bag(path) else Reader(path)


class _Ros1ToCdr:
    """Converts a ROS 1 bag's serialized messages into ROS 2 CDR of the Jazzy types."""

    def __init__(self, connections: list[Connection]) -> None:
        source: dict = {}
        for connection in connections:
            source.update(get_types_from_msg(connection.msgdef.data, connection.msgtype))
        self._source: Typestore = get_typestore(Stores.EMPTY)
        self._source.register(source)
        self._cache: dict[str, object] = {}

    def __call__(self, msgtype: str, data: bytes | memoryview) -> bytes:
        ensure_type(msgtype)
        return bytes(migrate_bytes(self._source, typestore(), msgtype, msgtype, self._cache,
                                   data, src_is2=False, dst_is2=True))


def read_bag_info(path: str | Path) -> BagInfo:
    """Summarise a bag folder (or a bare .mcap / .db3 file)."""
    path = Path(path)
    reader = _open_reader(path)
    version: int | None = None
    storage = path.suffix.lstrip('.') if path.is_file() else ''
    metadata_file = path / 'metadata.yaml'
    if metadata_file.is_file():
        with metadata_file.open() as stream:
            information = yaml.safe_load(stream)['rosbag2_bagfile_information']
        version = int(information['version'])
        storage = str(information.get('storage_identifier', ''))
    storage = {'db3': 'sqlite3', 'bag': 'rosbag1'}.get(storage, storage)
    reader.open()
    try:
        topics = tuple(
            TopicSummary(name=name, msgtype=info.msgtype or '(several types)',
                         message_count=info.msgcount,
                         type_hash=info.connections[0].digest if info.connections else '')
            for name, info in sorted(reader.topics.items()))
        return BagInfo(path=path, version=version, storage=storage,
                       start_ns=reader.start_time if reader.message_count else 0,
                       duration_ns=reader.duration if reader.message_count else 0,
                       message_count=reader.message_count, topics=topics)
    finally:
        reader.close()


@dataclass(frozen=True)
class BagRecord:
    """One serialized message of a bag."""

    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


def iter_records(path: str | Path, topics: Iterable[str] = ()) -> Iterator[BagRecord]:
    """Yield the bag's messages in time order, optionally only those of ``topics``."""
    wanted = set(topics)
    reader = _open_reader(Path(path))
    reader.open()
    try:
        connections: list[Connection] = [
            c for c in reader.connections if not wanted or c.topic in wanted]
        if not connections:
            return
        to_cdr = _Ros1ToCdr(connections) if isinstance(reader, Rosbag1Reader) else None
        for connection, timestamp, data in reader.messages(connections=connections):
            payload = to_cdr(connection.msgtype, data) if to_cdr else bytes(data)
            yield BagRecord(topic=connection.topic, msgtype=connection.msgtype,
                            timestamp_ns=timestamp, data=payload)
    finally:
        reader.close()


def read_messages(path: str | Path, topic: str) -> list[tuple[int, object]]:
    """Deserialize every message of ``topic`` with rclpy: ``[(bag_timestamp_ns, msg), ...]``.

    Needs the message package importable in this Python (e.g. ``sensor_msgs``).
    """
    from rclpy.serialization import deserialize_message  # noqa: PLC0415 (ROS only here)

    from deeplab_ros.bagtools.rclpy_types import message_class  # noqa: PLC0415

    messages = []
    for record in iter_records(path, [topic]):
        messages.append((record.timestamp_ns,
                         deserialize_message(record.data, message_class(record.msgtype))))
    return messages
