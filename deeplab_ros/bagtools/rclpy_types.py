"""rclpy message classes and QoS profiles for bag connections."""

from __future__ import annotations

import importlib

from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile
from rclpy.qos import ReliabilityPolicy
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime

from deeplab_ros.bagtools.message_definitions import MessageDefinitionError

_NS_PER_S = 1_000_000_000
_INFINITE_NS = 2**63 - 1


def message_class(msgtype: str) -> type:
    """Import the rclpy message class of ``'pkg/msg/Name'`` (also accepts ``'pkg/Name'``).

    Raises:
        MessageDefinitionError: The package is not importable or has no such message.
    """
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3:
        raise MessageDefinitionError(
            f'{msgtype!r} is not a ROS 2 type name like "sensor_msgs/msg/Image".')
    package, kind, name = parts
    try:
        module = importlib.import_module(f'{package}.{kind}')
    except ImportError as error:
        raise MessageDefinitionError(
            f'Cannot import {package}.{kind} for {msgtype}: install the interface package '
            f'{package} (or source its workspace).') from error
    try:
        return getattr(module, name)
    except AttributeError:
        raise MessageDefinitionError(
            f'{package}.{kind} has no message {name!r} ({msgtype}).') from None


def _duration_to_qos_time(duration: Duration) -> QosTime:
    nanoseconds = duration.nanoseconds
    if nanoseconds <= 0 or nanoseconds >= _INFINITE_NS:
        nanoseconds = _INFINITE_NS
    return QosTime(sec=nanoseconds // _NS_PER_S, nsec=nanoseconds % _NS_PER_S)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """Convert an rclpy QoS profile (e.g. a publisher's offered QoS) for the bag metadata."""
    return Qos(history=QosHistory(int(profile.history)), depth=int(profile.depth),
               reliability=QosReliability(int(profile.reliability)),
               durability=QosDurability(int(profile.durability)),
               deadline=_duration_to_qos_time(profile.deadline),
               lifespan=_duration_to_qos_time(profile.lifespan),
               liveliness=QosLiveliness(int(profile.liveliness)),
               liveliness_lease_duration=_duration_to_qos_time(
                   profile.liveliness_lease_duration),
               avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


def playback_qos(offered: list[Qos], default_depth: int = 10) -> QoSProfile:
    """Return the QoS to republish a recorded topic with, following the recorded QoS.

    The recorded reliability and durability are kept: reliable volatile unless every recorded
    publisher offered best effort / transient local (the way ``ros2 bag play`` adapts);
    keep-last ``default_depth``.
    """
    reliability = ReliabilityPolicy.RELIABLE
    durability = DurabilityPolicy.VOLATILE
    if offered:
        if all(q.reliability == QosReliability.BEST_EFFORT for q in offered):
            reliability = ReliabilityPolicy.BEST_EFFORT
        if all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered):
            durability = DurabilityPolicy.TRANSIENT_LOCAL
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=default_depth,
                      reliability=reliability, durability=durability)


def recording_qos(offered: list[QoSProfile], depth: int = 100) -> QoSProfile:
    """Return the QoS to subscribe with so that every offered publisher matches.

    As ``ros2 bag record`` does: reliable only when all publishers are reliable; transient
    local only when all are (so a late recorder still gets latched messages such as label
    info).
    """
    reliable = bool(offered) and all(
        p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    transient = bool(offered) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if transient
                    else DurabilityPolicy.VOLATILE),
        liveliness=LivelinessPolicy.AUTOMATIC)
