"""Pinhole geometry for depth images: intrinsics, back-projection and labelled point arrays.

    intrinsics = PinholeIntrinsics(fx=518.0, fy=519.0, cx=325.5, cy=253.5, width=640, height=480)
    points = back_project(depth_in_metres(depth_mm), intrinsics)     # HxWx3 float32, NaN holes
    cloud = labelled_points(points, labels, palette)                  # structured x y z rgb label

Coordinates are in the camera optical frame (x right, y down, z forward), metres. Pixel
``(u, v)`` (column, row, integers at pixel centres) with depth ``z`` maps to
``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``, the convention of ROS CameraInfo and
depth_image_proc. Everything is vectorised numpy; nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from deeplab_ros.core.errors import InputError

#: Optional fields: ``class_id`` (uint8) sits in the second byte of the label's 4-byte word,
#: which is padding otherwise, so it costs nothing; ``probability`` (float32) adds a word.
CLASS_ID_OFFSET, PROBABILITY_OFFSET = 17, 20


def point_dtype(class_id: bool = False, probability: bool = False) -> np.dtype:
    """The structured dtype of a labelled point: :data:`POINT_DTYPE` plus the optional fields.

    Point step 20 bytes, 24 with ``probability``; little-endian.
    """
    fields = [('x', '<f4', 0), ('y', '<f4', 4), ('z', '<f4', 8), ('rgb', '<f4', 12),
              ('label', 'u1', 16)]
    if class_id:
        fields.append(('class_id', 'u1', CLASS_ID_OFFSET))
    if probability:
        fields.append(('probability', '<f4', PROBABILITY_OFFSET))
    names, formats, offsets = (list(column) for column in zip(*fields))
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': PROBABILITY_OFFSET + 4 if probability else PROBABILITY_OFFSET})


#: Fields of a labelled point: what :func:`labelled_points` returns and PointCloud2 carries
#: (x, y, z, rgb, label; 20 bytes), without the optional fields.
POINT_DTYPE = point_dtype()


class IntrinsicsError(InputError):
    """Camera intrinsics that cannot back-project (zero focal length, no size, ...)."""


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Focal lengths and principal point (pixels) of an undistorted image of a given size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(values)):
            raise IntrinsicsError(f'intrinsics must be finite, got fx {self.fx} fy {self.fy} '
                                  f'cx {self.cx} cy {self.cy}')
        if not (self.fx > 0 and self.fy > 0):
            raise IntrinsicsError(f'focal lengths must be positive, got fx {self.fx} and '
                                  f'fy {self.fy} (K[0] and K[4] of the camera_info)')
        if self.width <= 0 or self.height <= 0:
            raise IntrinsicsError(f'image size must be positive, got {self.width}x'
                                  f'{self.height}')

    @classmethod
    def from_matrix(cls, k: Iterable[float], width: int, height: int) -> 'PinholeIntrinsics':
        """From a row-major 3x3 camera matrix (CameraInfo ``k``) and the image size."""
        matrix = np.asarray(list(k), dtype=np.float64).reshape(-1)
        if matrix.size != 9:
            raise IntrinsicsError(f'a camera matrix has 9 entries, got {matrix.size}')
        return cls(fx=float(matrix[0]), fy=float(matrix[4]), cx=float(matrix[2]),
                   cy=float(matrix[5]), width=int(width), height=int(height))

    def scaled(self, width: int, height: int) -> 'PinholeIntrinsics':
        """The same camera seen at another resolution (e.g. a depth image of half the size).

        Focal lengths and principal point scale with the size, as ROS's image_proc resize
        does with the camera matrix.
        """
        if (width, height) == (self.width, self.height):
            return self
        scale_x, scale_y = width / self.width, height / self.height
        return PinholeIntrinsics(fx=self.fx * scale_x, fy=self.fy * scale_y,
                                 cx=self.cx * scale_x, cy=self.cy * scale_y,
                                 width=int(width), height=int(height))


def same_aspect(size_a: tuple[int, int], size_b: tuple[int, int], tolerance_px: float = 1.0
                ) -> bool:
    """True when two (height, width) sizes are scaled versions of one another.

    ``tolerance_px`` allows the rounding of a scaled size (e.g. 640x480 and 321x241).
    """
    height_a, width_a = size_a
    height_b, width_b = size_b
    if min(height_a, width_a, height_b, width_b) <= 0:
        return False
    expected_height_b = height_a * width_b / width_a
    return abs(expected_height_b - height_b) <= tolerance_px * max(1.0, height_b / height_a)


def depth_in_metres(depth: np.ndarray, scale: float = 0.001) -> np.ndarray:
    """Convert HxW depth to float32 metres, with NaN where there is no reading.

    Integer depth (uint16 millimetres, as 16UC1) is multiplied by ``scale``; float depth
    (32FC1) is taken as metres. 0, negative and non-finite values mean "no reading".
    """
    if depth.ndim != 2:
        raise ValueError(f'depth must be HxW, got shape {depth.shape}')
    if np.issubdtype(depth.dtype, np.integer):
        metres = depth.astype(np.float32) * np.float32(scale)
    else:
        metres = depth.astype(np.float32, copy=True)
    metres[~(metres > 0) | ~np.isfinite(metres)] = np.nan
    return metres


def back_project(depth_m: np.ndarray, intrinsics: PinholeIntrinsics) -> np.ndarray:
    """HxWx3 float32 points (camera optical frame, metres) of an HxW depth image in metres.

    The intrinsics must describe the depth image's own resolution (see
    :meth:`PinholeIntrinsics.scaled`); pixels without depth give NaN points.
    """
    height, width = depth_m.shape
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise IntrinsicsError(f'intrinsics are for {intrinsics.width}x{intrinsics.height} but '
                              f'the depth image is {width}x{height}; scale them first')
    columns = (np.arange(width, dtype=np.float32) - np.float32(intrinsics.cx)) \
        / np.float32(intrinsics.fx)
    rows = (np.arange(height, dtype=np.float32) - np.float32(intrinsics.cy)) \
        / np.float32(intrinsics.fy)
    points = np.empty((height, width, 3), dtype=np.float32)
    np.multiply(depth_m, columns[None, :], out=points[..., 0])
    np.multiply(depth_m, rows[:, None], out=points[..., 1])
    points[..., 2] = depth_m
    return points


def resize_nearest(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an HxW(xC) array of any dtype to ``size`` (height, width).

    Pixel-centre aligned (the source pixel under each target pixel's centre), the same
    sampling as OpenCV's ``INTER_NEAREST_EXACT`` and torch's ``nearest-exact``.
    """
    height, width = image.shape[:2]
    if (height, width) == tuple(size):
        return image
    rows = np.minimum(((np.arange(size[0]) + 0.5) * (height / size[0])).astype(np.intp),
                      height - 1)
    columns = np.minimum(((np.arange(size[1]) + 0.5) * (width / size[1])).astype(np.intp),
                         width - 1)
    return image[rows[:, None], columns[None, :]]


def back_project_at(depth_m: np.ndarray, intrinsics: PinholeIntrinsics,
                    size: tuple[int, int]) -> np.ndarray:
    """Points at another resolution than the depth image's: one per pixel of ``size``.

    Each pixel of a ``size`` (height, width) image, e.g. the label image, takes the depth of
    the depth pixel under its centre (nearest) and is back-projected along its own ray, with
    the intrinsics scaled to ``size``: point ``v * width + u`` belongs to pixel ``(u, v)``.
    ``intrinsics`` describe the depth image's resolution, as for :func:`back_project`.
    """
    height, width = size
    if depth_m.shape == (height, width):
        return back_project(depth_m, intrinsics)
    return back_project(resize_nearest(depth_m, size), intrinsics.scaled(width, height))


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """...x3 uint8 RGB -> float32 with the bytes 0x00RRGGBB, the ``rgb`` field RViz reads."""
    colors = colors.astype(np.uint32)
    packed = (colors[..., 0] << 16) | (colors[..., 1] << 8) | colors[..., 2]
    return packed.view(np.float32)


def labelled_points(points: np.ndarray, labels: np.ndarray, palette_lut: np.ndarray, *,
                    stride: int = 1, dense: bool = False,
                    keep_classes: Iterable[int] | None = None,
                    class_id_lut: np.ndarray | None = None,
                    confidence: np.ndarray | None = None) -> np.ndarray:
    """Structured array of a labelled cloud (:func:`point_dtype`, :data:`POINT_DTYPE` plain).

    Args:
        points: HxWx3 float32 points (:func:`back_project`), NaN where depth is missing.
        labels: HxW uint8 class ids at the same resolution.
        palette_lut: (256, 3) uint8 class id -> RGB.
        stride: Keep every ``stride``-th row and column.
        dense: Drop points without depth (and of other classes): an N-point array.
            Otherwise organised, (H / stride) x (W / stride), with NaN coordinates where
            depth is missing or the class is not kept (as depth_image_proc does).
        keep_classes: Class ids to keep; ``None`` or empty keeps all.
        class_id_lut: (256,) uint8 class id -> value of a ``class_id`` field (e.g. the
            Autoware class of each model class); ``None``: no such field.
        confidence: HxW uint8 top-class probability x 255 (the segmenter's confidence) at
            the labels' resolution: adds a float32 ``probability`` field = confidence / 255.
    """
    if points.shape[:2] != labels.shape:
        raise ValueError(f'points {points.shape[:2]} and labels {labels.shape} differ in size')
    if stride < 1:
        raise ValueError(f'stride must be at least 1, got {stride}')
    if confidence is not None and confidence.shape != labels.shape:
        raise ValueError(f'confidence {confidence.shape} and labels {labels.shape} differ in '
                         'size')
    points = points[::stride, ::stride]
    labels = labels[::stride, ::stride]
    if confidence is not None:
        confidence = confidence[::stride, ::stride]
    valid = ~np.isnan(points[..., 2])
    keep = np.asarray(sorted(set(keep_classes or ())), dtype=np.int64)
    if keep.size:
        class_kept = np.zeros(256, dtype=bool)
        class_kept[keep[(keep >= 0) & (keep < 256)]] = True
        valid &= class_kept[labels]
    if dense:
        points, labels = points[valid], labels[valid]
        confidence = confidence[valid] if confidence is not None else None
    # Little-endian 4-byte words per point: x, y, z, rgb, then the label in the lowest byte
    # of the fifth (the class_id value in the next byte, the other bytes zero) and the
    # probability as a sixth, viewed as the structured dtype.
    dtype = point_dtype(class_id=class_id_lut is not None, probability=confidence is not None)
    words = np.empty(labels.shape + (dtype.itemsize // 4,), dtype='<f4')
    words[..., :3] = points
    if keep.size and not dense:
        np.copyto(words[..., :3], np.float32(np.nan), where=~valid[..., None])
    words[..., 3] = pack_rgb(palette_lut)[labels]
    label_word = labels.astype('<u4')
    if class_id_lut is not None:
        label_word |= np.asarray(class_id_lut, dtype='<u4')[labels] << 8
    words[..., 4] = label_word.view('<f4')
    if confidence is not None:
        np.divide(confidence, np.float32(255.0), out=words[..., 5], casting='unsafe')
    return words.view(dtype)[..., 0]
