"""Identity and time of a message by its header (rclpy and rosbags messages alike)."""

from __future__ import annotations

from typing import Any


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def header_key(header: Any) -> tuple[int, int, str]:
    """``(sec, nanosec, frame_id)`` of a header: matches an output to its input frame."""
    return header.stamp.sec, header.stamp.nanosec, header.frame_id
