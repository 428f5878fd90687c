"""Frame sources for making bags: a video file (OpenCV) or a folder of images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import math
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')
DEFAULT_HORIZONTAL_FOV_DEG = 60.0


@dataclass(frozen=True)
class FrameSource:
    """Where frames come from, and the rate they were captured at (``None`` if unknown)."""

    path: Path
    kind: str  # 'video' or 'folder'
    native_rate: float | None
    frame_count: int | None

    def frames(self, *, max_frames: int | None = None, resize: tuple[int, int] | None = None,
               first: int = 0, step: int = 1) -> Iterator[np.ndarray]:
        """Yield RGB uint8 frames (HxWx3), optionally resized to ``resize`` = (width, height).

        Frames ``first``, ``first + step``, ... of the source, at most ``max_frames`` of them.
        """
        if first < 0 or step < 1:
            raise ValueError(f'Need first >= 0 and step >= 1, got first={first}, step={step}.')
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
            raise ValueError(f'OpenCV cannot open the video {self.path}: check the file is a '
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
                raise ValueError(f'OpenCV cannot read the image {path}; remove it from the '
                                 'folder or convert it to PNG/JPEG.')
            yield bgr


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_frame_source(path: str | Path) -> FrameSource:
    """Open a video file or an image folder (frames in file-name order) as a frame source.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The video cannot be decoded or the folder holds no images.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f'No video or image folder at {path}: give the path of a video '
                                'file (e.g. .mp4, .avi) or of a folder of images.')
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise ValueError(f'The folder {path} holds no images (looked for '
                             f'{", ".join(IMAGE_SUFFIXES)}).')
        return FrameSource(path=path, kind='folder', native_rate=None, frame_count=len(files))
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f'OpenCV cannot open the video {path}: check the file is a video '
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
        raise ValueError(f'Image size must be positive, got {width}x{height}.')
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
        raise ValueError(f'Size {text!r} is not WIDTHxHEIGHT (e.g. 640x360).') from None
    if width <= 0 or height <= 0:
        raise ValueError(f'Size {text!r} must have a positive width and height.')
    return width, height
