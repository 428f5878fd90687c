"""Message definitions and type hashes for bag connections (rosbags typestore).

A rosbag2 connection stores the message type, its full definition and its RIHS01 type hash;
``ros2 bag info`` / ``ros2 bag play`` rely on them. The Jazzy typestore of ``rosbags`` knows the
common interfaces; other packages (e.g. ``vision_msgs``) are loaded from the ``.msg`` files
their installation puts under ``share/<package>/msg`` (ament prefixes and this Python prefix).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from rosbags.interfaces import Nodetype
from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.package_files import ament_prefixes


_MAX_NESTING = 16


class MessageDefinitionError(ConfigurationError):
    """A message type's definition (or its rclpy class) could not be found."""


def interface_search_paths() -> list[Path]:
    """Prefixes whose ``share/<package>/msg`` folders may hold message definitions."""
    return ament_prefixes()


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Return the shared Jazzy typestore, extended on demand by :func:`ensure_type`."""
    return get_typestore(Stores.ROS2_JAZZY)


def _find_msg_file(msgtype: str) -> Path | None:
    package, kind, name = msgtype.split('/')
    for prefix in interface_search_paths():
        candidate = prefix / 'share' / package / kind / f'{name}.msg'
        if candidate.is_file():
            return candidate
    return None


def ensure_type(msgtype: str, _depth: int = 0) -> Typestore:
    """Make ``msgtype`` (``pkg/msg/Name``) and its field types known to the typestore.

    Raises:
        MessageDefinitionError: No definition for the type (or one of its fields) was found.
    """
    store = typestore()
    if msgtype in store.types:
        return store
    if msgtype.count('/') != 2:
        raise MessageDefinitionError(f'{msgtype!r} is not a ROS 2 type name like '
                                     '"sensor_msgs/msg/Image".')
    path = _find_msg_file(msgtype)
    if path is None:
        where = ', '.join(str(p / 'share') for p in interface_search_paths())
        raise MessageDefinitionError(
            f'No definition for message type {msgtype}: looked for '
            f'{msgtype.split("/")[0]}/msg/{msgtype.split("/")[2]}.msg under {where}. Install '
            'the interface package (or source its workspace so AMENT_PREFIX_PATH names it).')
    store.register(get_types_from_msg(path.read_text(), msgtype))
    if _depth < _MAX_NESTING:
        for _, field in store.fielddefs[msgtype][1]:
            dependency = _referenced_type(field)
            if dependency is not None:
                ensure_type(dependency, _depth + 1)
    return store


def _referenced_type(field: tuple) -> str | None:
    """The message type a rosbags field definition refers to (also inside arrays), if any."""
    node_type, spec = field
    if node_type == Nodetype.NAME:
        return spec
    if node_type in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return _referenced_type(spec[0])
    return None


def message_definition(msgtype: str) -> tuple[str, str]:
    """Return ``(msgdef, rihs01)`` for a connection of ``msgtype``."""
    store = ensure_type(msgtype)
    msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
    return msgdef, store.hash_rihs01(msgtype)
