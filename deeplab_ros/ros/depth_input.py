"""Depth images for the colour frames: a bounded stamp-matching buffer and input checks.

Depth images are registered to the colour camera (same optical frame, possibly another
resolution) and arrive on their own topic. :class:`StampMatcher` keeps the newest few and
hands out the one whose stamp is nearest a colour frame's, within a tolerance.
:func:`depth_for_frame` turns a matched message plus the colour camera_info into metres and
intrinsics at the depth image's resolution, or raises :class:`DepthInputError` saying what is
wrong (the node counts it and carries on).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
import time
from typing import Any, Generic, TypeVar

import numpy as np

from deeplab_ros.core.errors import InputError
from deeplab_ros.core.geometry import (
    depth_in_metres, IntrinsicsError, PinholeIntrinsics, same_aspect)
from deeplab_ros.ros.image_codec import DEPTH_ENCODINGS, decode_depth_msg, ImageDecodeError

Item = TypeVar('Item')


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class StampMatcher(Generic[Item]):
    """The last ``capacity`` stamped items; finds the one nearest a stamp (thread-safe).

    Older items fall out as new ones arrive, so memory stays bounded whatever the rates.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f'capacity must be at least 1, got {capacity}')
        self._items: deque[tuple[int, Item]] = deque(maxlen=capacity)
        self._condition = threading.Condition()
        self._last_added: float | None = None

    def __len__(self) -> int:
        with self._condition:
            return len(self._items)

    def add(self, stamp: int, item: Item) -> None:
        """Keep ``item`` stamped ``stamp`` (nanoseconds)."""
        with self._condition:
            self._items.append((stamp, item))
            self._last_added = time.monotonic()
            self._condition.notify_all()

    def silent_for(self) -> float | None:
        """Seconds since the last item arrived (None when none ever did)."""
        with self._condition:
            return None if self._last_added is None else time.monotonic() - self._last_added

    def clear(self) -> None:
        """Forget every item."""
        with self._condition:
            self._items.clear()

    def match(self, stamp: int, tolerance_ns: int, wait_s: float = 0.0) -> Item | None:
        """The item nearest ``stamp`` within ``tolerance_ns``, or None.

        While no item at or after ``stamp`` has arrived, waits up to ``wait_s`` seconds for
        one (the depth image of a frame may arrive just after the frame).
        """
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._condition:
            while True:
                best = self._nearest(stamp, tolerance_ns)
                newest = self._items[-1][0] if self._items else None
                left = deadline - time.monotonic()
                if (best is not None and best[0] == stamp) or left <= 0 or \
                        (newest is not None and newest >= stamp):
                    return None if best is None else best[1]
                self._condition.wait(left)

    def _nearest(self, stamp: int, tolerance_ns: int) -> tuple[int, Item] | None:
        best: tuple[int, Item] | None = None
        for candidate in self._items:
            distance = abs(candidate[0] - stamp)
            if distance <= tolerance_ns and (best is None or distance < abs(best[0] - stamp)):
                best = candidate
        return best


class DepthInputError(InputError):
    """A depth image (or the camera_info it needs) cannot be used.

    ``kind`` names the counter: ``'bad_depth'`` (encoding, size, data) or
    ``'bad_camera_info'`` (none received, zero focal length, ...); ``problem`` is a short tag
    of what is wrong (errors are throttled per problem).
    """

    def __init__(self, kind: str, problem: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.problem = problem


def check_depth_message(message: Any) -> None:
    """Raise DepthInputError('bad_depth') when a depth Image cannot be decoded."""
    problem = 'data' if message.encoding in DEPTH_ENCODINGS else 'encoding'
    try:
        decode_depth_msg(message)
    except ImageDecodeError as error:
        raise DepthInputError('bad_depth', problem, str(error)) from None


@dataclass(frozen=True)
class FrameDepth:
    """A colour frame's depth: HxW float32 metres (NaN = none) and its intrinsics."""

    metres: np.ndarray
    intrinsics: PinholeIntrinsics


def depth_for_frame(depth_message: Any, camera_info: Any | None,
                    frame_size: tuple[int, int]) -> FrameDepth:
    """Metres and intrinsics (at the depth resolution) of a depth image matched to a frame.

    Args:
        depth_message: sensor_msgs/Image, 16UC1 millimetres or 32FC1 metres.
        camera_info: The colour camera's sensor_msgs/CameraInfo (None when none arrived).
        frame_size: (height, width) of the colour frame.

    Raises:
        DepthInputError: Undecodable depth, a depth image that is not a scaled version of the
            colour frame, or missing / unusable camera_info.
    """
    try:
        depth = decode_depth_msg(depth_message)
    except ImageDecodeError as error:
        raise DepthInputError('bad_depth', 'data', str(error)) from None
    if not same_aspect(frame_size, depth.shape):
        raise DepthInputError(
            'bad_depth', 'size',
            f'depth image is {depth.shape[1]}x{depth.shape[0]} but the colour frame is '
            f'{frame_size[1]}x{frame_size[0]}: a registered depth image must have the colour '
            'image\'s size or a scaled version of it')
    if camera_info is None:
        raise DepthInputError(
            'bad_camera_info', 'no camera_info',
            'depth arrived but no camera_info for the colour camera did: the point cloud and '
            '3D detections need its intrinsics')
    width = int(camera_info.width) or frame_size[1]
    height = int(camera_info.height) or frame_size[0]
    try:
        intrinsics = PinholeIntrinsics.from_matrix(camera_info.k, width, height)
    except IntrinsicsError as error:
        raise DepthInputError('bad_camera_info', 'intrinsics',
                              f'camera_info is unusable: {error}') from None
    return FrameDepth(metres=depth_in_metres(depth),
                      intrinsics=intrinsics.scaled(depth.shape[1], depth.shape[0]))
