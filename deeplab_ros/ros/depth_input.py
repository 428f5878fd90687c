"""Depth images for the colour frames: their stamps and input checks.

Depth images are registered to the colour camera (same optical frame, possibly another
resolution) and arrive on their own topic.
:class:`~deeplab_ros.streaming.stamp_matcher.StampMatcher` keeps the newest few and hands out
the one whose stamp is nearest a colour frame's, within a tolerance.
:func:`depth_for_frame` turns a matched message plus the colour camera_info into metres and
intrinsics at the depth image's resolution, or raises :class:`DepthInputError` saying what is
wrong (the node counts it and carries on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deeplab_ros.core.errors import InputError
from deeplab_ros.core.spatial.geometry import (
    depth_in_metres, IntrinsicsError, PinholeIntrinsics, same_aspect)
from deeplab_ros.ros.image_codec import DEPTH_ENCODINGS, decode_depth_msg, ImageDecodeError


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
