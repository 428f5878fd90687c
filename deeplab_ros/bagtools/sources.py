"""Frame sources for making bags: a video file (OpenCV) or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import math
from pathlib import Path

import cv2
import numpy as np

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.files import IMAGE_SUFFIXES

DEFAULT_HORIZONTAL_FOV_DEG = 60.0


class BagError(ConfigurationError):
    """A bag cannot be made, read or played.

    For example a source that cannot be read, or settings that cannot give a valid bag; the
    message says which bag or source and why.
    """


@dataclass(frozen=True)
class FrameSource:
    """Where frames come from, and the rate they were captured at (``None`` if unknown)."""

    path: Path
    kind: str  # 'video' or 'folder'
    native_rate: float | None
    frame_count: int | None

    def frames(self, *, max_frames: int | None = None, resize: tuple[int, int] | None = None,
               first: int = 0, step: int = 1) -> Iterator[np.ndarray]:
        """Yield RGB uint8 HxWx3 frames, optionally resized to ``resize`` = (width, height).

        Frames ``first``, ``first + step``, ... of the source, at most ``max_frames`` of them.
        """
        if first < 0 or step < 1:
            raise BagError(f'Need first >= 0 and step >= 1, got first={first}, step={step}.')
        raw = self._video_frames() if self.kind == 'video' else self._folder_frames()
        taken = 0
        for index, bgr in enumerate(raw):
            if index < first or (index - first) % step:
                continue
            if max_frames is not None and taken >= max_frames:
                break
            taken += 1
            if resize is not None and (bgr.shape[1], bgr.shape[0]) != resize:
                bgr = cv2.resize(bgr, resize, interpolation=cv2.INTER_AREA)
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _video_frames(self) -> Iterator[np.ndarray]:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise BagError(f'OpenCV cannot open the video {self.path}: check the file is a '
                           'video its bundled FFmpeg decodes (mp4/H.264, avi/MJPEG, ...).')
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield bgr
        finally:
            capture.release()

    def _folder_frames(self) -> Iterator[np.ndarray]:
        for path in _image_files(self.path):
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise BagError(f'OpenCV cannot read the image {path}; remove it from the '
                               'folder or convert it to PNG/JPEG.')
            yield bgr


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_frame_source(path: str | Path) -> FrameSource:
    """Open a video file or an image folder (frames in file-name order) as a frame source.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        BagError: The video cannot be decoded or the folder holds no images.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'No video or image folder at {path}: give the path of a video '
                       'file (e.g. .mp4, .avi) or of a folder of images.')
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise BagError(f'The folder {path} holds no images (looked for '
                           f'{", ".join(IMAGE_SUFFIXES)}).')
        return FrameSource(path=path, kind='folder', native_rate=None, frame_count=len(files))
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise BagError(f'OpenCV cannot open the video {path}: check the file is a video '
                           'its bundled FFmpeg decodes (mp4/H.264, avi/MJPEG, ...).')
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    return FrameSource(path=path, kind='video',
                       native_rate=fps if math.isfinite(fps) and fps > 0 else None,
                       frame_count=count if count > 0 else None)


def pinhole_intrinsics(width: int, height: int,
                       horizontal_fov_deg: float = DEFAULT_HORIZONTAL_FOV_DEG
                       ) -> tuple[float, ...]:
    """Return a plausible row-major 3x3 camera matrix K for an undistorted pinhole camera.

    Square pixels, the principal point at the image centre and a focal length giving
    ``horizontal_fov_deg`` across the width (60 degrees: a typical webcam / dashcam).
    """
    if width <= 0 or height <= 0:
        raise BagError(f'Image size must be positive, got {width}x{height}.')
    focal = 0.5 * width / math.tan(math.radians(horizontal_fov_deg) / 2.0)
    cx = (width - 1) / 2.0
    cy = (height - 1) / 2.0
    return (focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0)


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``'WIDTHxHEIGHT'`` (e.g. ``'640x360'``) into ``(width, height)``."""
    try:
        width_text, height_text = text.lower().split('x')
        width, height = int(width_text), int(height_text)
    except ValueError:
        raise BagError(f'Size {text!r} is not WIDTHxHEIGHT (e.g. 640x360).') from None
    if width <= 0 or height <= 0:
        raise BagError(f'Size {text!r} must have a positive width and height.')
    return width, height


RGBD_CAMERA_FILE = 'camera.yaml'


@dataclass(frozen=True)
class RgbdSource:
    """A folder of registered colour + depth frames.

    It holds ``color/N.png``, ``depth/N.pgm`` (uint16 millimetres, 0 = no reading) and
    ``camera.yaml`` (fx, fy, cx, cy, width, height).
    """

    path: Path
    camera_matrix: tuple[float, ...]   # row-major 3x3 K of the colour camera
    width: int
    height: int
    pairs: tuple[tuple[Path, Path], ...]

    def frames(self, *, max_frames: int | None = None, resize: tuple[int, int] | None = None,
               first: int = 0, step: int = 1
               ) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[float, ...]]]:
        """Yield ``(rgb, depth_mm, K)``: HxWx3 uint8, HxW uint16 and the matrix at that size.

        ``resize`` = (width, height) resizes colour (area) and depth (nearest: no mixing of
        near and far readings) and scales K.
        """
        pairs = self.pairs[first::step][:max_frames]
        for color_path, depth_path in pairs:
            bgr = cv2.imread(str(color_path), cv2.IMREAD_COLOR)
            depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
            if bgr is None or depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
                raise BagError(f'Cannot read {color_path} as colour and {depth_path} as a '
                               'uint16 depth image.')
            matrix = self.camera_matrix
            if resize is not None and (bgr.shape[1], bgr.shape[0]) != resize:
                scale_x, scale_y = resize[0] / bgr.shape[1], resize[1] / bgr.shape[0]
                bgr = cv2.resize(bgr, resize, interpolation=cv2.INTER_AREA)
                depth = cv2.resize(depth, resize, interpolation=cv2.INTER_NEAREST)
                matrix = (matrix[0] * scale_x, 0.0, matrix[2] * scale_x,
                          0.0, matrix[4] * scale_y, matrix[5] * scale_y, 0.0, 0.0, 1.0)
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), depth, matrix


def is_rgbd_folder(path: str | Path) -> bool:
    """True for a folder laid out as :class:`RgbdSource` describes."""
    path = Path(path)
    return path.is_dir() and (path / RGBD_CAMERA_FILE).is_file() and \
        (path / 'color').is_dir() and (path / 'depth').is_dir()


def open_rgbd_source(path: str | Path) -> RgbdSource:
    """Open an RGB-D folder; frames pair ``color/N.*`` with ``depth/N.*`` by file stem.

    Raises:
        BagError: Not an RGB-D folder, camera.yaml incomplete, or no pairs.
    """
    import yaml  # noqa: PLC0415

    path = Path(path)
    if not is_rgbd_folder(path):
        raise BagError(f'{path} is not an RGB-D folder (color/, depth/ and '
                       f'{RGBD_CAMERA_FILE}).')
    values = yaml.safe_load((path / RGBD_CAMERA_FILE).read_text()) or {}
    try:
        fx, fy, cx, cy = (float(values[key]) for key in ('fx', 'fy', 'cx', 'cy'))
        width, height = int(values['width']), int(values['height'])
    except (KeyError, TypeError, ValueError) as error:
        raise BagError(f'{path / RGBD_CAMERA_FILE} needs fx, fy, cx, cy, width and height: '
                       f'{error}') from None
    depth_by_stem = {p.stem: p for p in _image_files(path / 'depth')}
    colour = [p for p in _image_files(path / 'color') if p.stem in depth_by_stem]
    colour.sort(key=lambda p: (int(p.stem) if p.stem.isdigit() else 0, p.stem))
    if not colour:
        raise BagError(f'{path} has no colour/depth pairs with matching names.')
    return RgbdSource(path=path, camera_matrix=(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0),
                      width=width, height=height,
                      pairs=tuple((p, depth_by_stem[p.stem]) for p in colour))
