"""Identity and time of a message by its header (rclpy and rosbags messages alike).

Nothing here imports ROS at module level: the bag tools use it with rosbags messages.
"""

from __future__ import annotations

from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from builtin_interfaces.msg import Time

NS_PER_SECOND = 1_000_000_000


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * NS_PER_SECOND + int(header.stamp.nanosec)


def split_ns(ns: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of a time in nanoseconds: the fields of a builtin_interfaces Time."""
    return divmod(int(ns), NS_PER_SECOND)


def stamp_from_ns(ns: int) -> Time:
    """An rclpy builtin_interfaces/Time of a time in nanoseconds (the reverse of stamp_ns)."""
    from builtin_interfaces.msg import Time  # noqa: PLC0415 - rclpy messages on demand

    sec, nanosec = split_ns(ns)
    return Time(sec=sec, nanosec=nanosec)


def header_key(header: Any) -> tuple[int, int, str]:
    """``(sec, nanosec, frame_id)`` of a header: matches an output to its input frame."""
    return header.stamp.sec, header.stamp.nanosec, header.frame_id
