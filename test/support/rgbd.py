"""The shared real RGB-D frames (Kinect, depth registered to colour) and their intrinsics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from deeplab_ros.core.spatial.geometry import PinholeIntrinsics
from deeplab_ros.core.weights.locations import shared_path

FRAME_NUMBERS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class RgbdCamera(PinholeIntrinsics):
    """camera.yaml of the RGB-D frames: the pinhole intrinsics and the depth scale."""

    depth_scale: float = 1000.0


@dataclass(frozen=True)
class RgbdFrame:
    """One colour frame (HxWx3 uint8 RGB) and its registered depth (HxW uint16 mm)."""

    number: int
    rgb: np.ndarray
    depth_mm: np.ndarray


def rgbd_dir() -> Path:
    """The shared data/rgbd folder."""
    return shared_path('data/rgbd', hint='The RGB-D tests use the shared Kinect frames.')


def rgbd_camera() -> RgbdCamera:
    """The intrinsics from camera.yaml."""
    values = yaml.safe_load((rgbd_dir() / 'camera.yaml').read_text())
    return RgbdCamera(fx=float(values['fx']), fy=float(values['fy']), cx=float(values['cx']),
                      cy=float(values['cy']), width=int(values['width']),
                      height=int(values['height']), depth_scale=float(values['depth_scale']))


def rgbd_frame(number: int) -> RgbdFrame:
    """Frame ``number`` (1..5)."""
    folder = rgbd_dir()
    bgr = cv2.imread(str(folder / 'color' / f'{number}.png'), cv2.IMREAD_COLOR)
    depth = cv2.imread(str(folder / 'depth' / f'{number}.pgm'), cv2.IMREAD_UNCHANGED)
    assert bgr is not None and depth is not None and depth.dtype == np.uint16
    return RgbdFrame(number=number, rgb=np.ascontiguousarray(bgr[..., ::-1]), depth_mm=depth)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Float32-packed colours (geometry.pack_rgb) -> ...x3 uint8 RGB (the inverse)."""
    bits = np.array(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255],
                    axis=-1).astype(np.uint8)
