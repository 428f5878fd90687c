"""Depth and compressed-image decoding, stamp matching and the depth input checks (no DDS)."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

from support.codec import encode_depth
from deeplab_ros.ros.depth_input import check_depth_message, depth_for_frame, DepthInputError
from deeplab_ros.ros.image_codec import (
    decode_compressed_image, decode_depth_msg, ImageDecodeError)
from deeplab_ros.streaming.stamp_matcher import StampMatcher
from support.rgbd import rgbd_camera, rgbd_frame


def test_stamp_matcher_picks_the_nearest_within_tolerance_and_stays_bounded() -> None:
    matcher: StampMatcher[str] = StampMatcher(3)
    for stamp in (100, 200, 300, 400):
        matcher.add(stamp, f'depth {stamp}')
    assert len(matcher) == 3  # 100 fell out
    assert matcher.match(310, tolerance_ns=20) == 'depth 300'
    assert matcher.match(349, tolerance_ns=100) == 'depth 300'
    assert matcher.match(351, tolerance_ns=100) == 'depth 400'
    assert matcher.match(100, tolerance_ns=50) is None
    assert matcher.match(250, tolerance_ns=10) is None


def test_stamp_matcher_waits_for_a_depth_image_arriving_after_its_frame() -> None:
    matcher: StampMatcher[str] = StampMatcher(5)
    assert matcher.silent_for() is None
    threading.Timer(0.1, lambda: matcher.add(1000, 'late')).start()
    # The wait ends when the depth image arrives, not when wait_s runs out (bounds far from
    # any host's scheduling delays: a wait that ran out would take the whole wait_s).
    wait_s = 60.0
    started = time.monotonic()
    assert matcher.match(1000, tolerance_ns=0, wait_s=wait_s) == 'late'
    assert time.monotonic() - started < wait_s / 2
    assert 0.0 <= matcher.silent_for() < wait_s / 2
    # Something newer than the frame is there already: no waiting.
    started = time.monotonic()
    assert matcher.match(900, tolerance_ns=10, wait_s=wait_s) is None
    assert time.monotonic() - started < wait_s / 2


def test_depth_round_trips_in_both_encodings_and_big_endian() -> None:
    frame = rgbd_frame(1)
    message = encode_depth(frame.depth_mm, Header())
    assert (message.encoding, message.step) == ('16UC1', 1280)
    assert np.array_equal(decode_depth_msg(message), frame.depth_mm)
    metres = (frame.depth_mm / 1000.0).astype(np.float32)
    message = encode_depth(metres, Header())
    assert message.encoding == '32FC1'
    assert np.array_equal(decode_depth_msg(message), metres)
    swapped = encode_depth(frame.depth_mm, Header())
    swapped.data = frame.depth_mm.astype('>u2').tobytes()
    swapped.is_bigendian = 1
    assert np.array_equal(decode_depth_msg(swapped), frame.depth_mm)


def _info(k: list[float], width: int = 640, height: int = 480) -> CameraInfo:
    return CameraInfo(width=width, height=height, k=k)


def test_depth_for_frame_scales_intrinsics_and_rejects_bad_input() -> None:
    camera = rgbd_camera()
    k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    frame = rgbd_frame(2)
    half = np.ascontiguousarray(frame.depth_mm[::2, ::2])
    depth = depth_for_frame(encode_depth(half, Header()), _info(k), (480, 640))
    assert (depth.intrinsics.width, depth.intrinsics.height) == (320, 240)
    assert depth.intrinsics.fx == pytest.approx(camera.fx / 2)
    assert np.array_equal(np.isnan(depth.metres), half == 0)
    cases = [
        (encode_depth(np.zeros((100, 300), np.uint16), Header()), _info(k), 'bad_depth',
         'size'),
        (encode_depth(half, Header()), None, 'bad_camera_info', 'no camera_info'),
        (encode_depth(half, Header()), _info([0.0] * 9), 'bad_camera_info', 'intrinsics'),
    ]
    for message, info, kind, problem in cases:
        with pytest.raises(DepthInputError) as caught:
            depth_for_frame(message, info, (480, 640))
        assert (caught.value.kind, caught.value.problem) == (kind, problem)
    wrong = encode_depth(half, Header())
    wrong.encoding = 'bgr8'
    with pytest.raises(DepthInputError, match="depth encoding 'bgr8'") as caught:
        check_depth_message(wrong)
    assert caught.value.problem == 'encoding'


def test_compressed_jpeg_and_png_decode_and_broken_data_is_refused() -> None:
    rgb = rgbd_frame(3).rgb
    ok, png = cv2.imencode('.png', rgb[..., ::-1])
    assert ok and np.array_equal(decode_compressed_image(png.tobytes(), 'png'), rgb)
    ok, jpeg = cv2.imencode('.jpg', rgb[..., ::-1])
    decoded = decode_compressed_image(jpeg.tobytes(), 'rgb8; jpeg compressed bgr8')
    assert decoded.shape == rgb.shape and np.abs(decoded.astype(int) - rgb).mean() < 5
    for data, fragment in ((jpeg.tobytes()[: len(jpeg) // 2], 'truncated'),
                           (png.tobytes()[: len(png) // 2], 'cannot decode'),
                           (b'not an image', 'cannot decode'), (b'', 'empty')):
        with pytest.raises(ImageDecodeError, match=fragment):
            decode_compressed_image(data, 'jpeg')
