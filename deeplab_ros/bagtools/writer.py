"""Write rosbag2 bags of camera frames without ROS.

Frames become sensor_msgs/Image or CompressedImage messages, with CameraInfo and, from an RGB-D
folder, 16UC1 depth images.

Messages are serialized to CDR by the ``rosbags`` Jazzy typestore; every connection carries
its full message definition and RIHS01 type hash, so ``ros2 bag info`` / ``ros2 bag play``
accept the bags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import time

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from deeplab_ros.bagtools.message_definitions import message_definition, typestore
from deeplab_ros.bagtools.sources import (  # noqa: F401 - BagError is raised from here too
    BagError, is_rgbd_folder, open_frame_source, open_rgbd_source, pinhole_intrinsics)
from deeplab_ros.ros.stamps import split_ns

IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
COMPRESSED_IMAGE_TYPE = 'sensor_msgs/msg/CompressedImage'
#: 'raw': sensor_msgs/Image on the image topic; 'jpeg' / 'png': sensor_msgs/CompressedImage
#: on ``<image topic>/compressed`` (image_transport's naming).
IMAGE_FORMATS = ('raw', 'jpeg', 'png')
STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_VERSIONS = (8, 9)
ENCODINGS = ('rgb8', 'bgr8')
_INFINITE = QosTime(sec=9223372036, nsec=854775807)
RELIABLE_QOS = Qos(history=QosHistory.KEEP_LAST, depth=10, reliability=QosReliability.RELIABLE,
                   durability=QosDurability.VOLATILE, deadline=_INFINITE, lifespan=_INFINITE,
                   liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
                   avoid_ros_namespace_conventions=False)


@dataclass(frozen=True)
class ImageBagSpec:
    """What :func:`write_image_bag` writes.

    Attributes:
        output: The bag folder to create (must not exist).
        image_topic: Topic of the sensor_msgs/Image messages.
        camera_info_topic: Topic of the CameraInfo messages ('' for none).
        frame_id: ``header.frame_id`` of every message.
        rate: Frames per second of the stamps (``None``: the video's own rate, else 10).
        start_time: Stamp of the first frame in seconds since the epoch (``None``: now).
        max_frames: Stop after this many frames (``None``: all).
        first_frame: Index of the first source frame to use.
        frame_step: Use every ``frame_step``-th frame from ``first_frame`` on.
        resize: ``(width, height)`` to resize frames to (``None``: keep).
        encoding: ``'rgb8'`` or ``'bgr8'`` (raw images).
        storage: ``'mcap'`` or ``'sqlite3'``.
        version: rosbag2 metadata version, 8 (Humble/Iron) or 9 (Jazzy and later).
        image_format: One of :data:`IMAGE_FORMATS`.
        depth_topic: Topic of the 16UC1 depth images (RGB-D folder sources only).
        jpeg_quality: JPEG quality (1-100) for ``image_format='jpeg'``.
    """

    output: Path
    image_topic: str = '/camera/image_raw'
    camera_info_topic: str = '/camera/camera_info'
    frame_id: str = 'camera_optical_frame'
    rate: float | None = None
    start_time: float | None = None
    max_frames: int | None = None
    first_frame: int = 0
    frame_step: int = 1
    resize: tuple[int, int] | None = None
    encoding: str = 'rgb8'
    storage: str = 'mcap'
    version: int = 9
    image_format: str = 'raw'
    depth_topic: str = '/camera/depth/image_raw'
    jpeg_quality: int = 90

    @property
    def written_image_topic(self) -> str:
        """The topic images go to: ``image_topic``, plus ``/compressed`` when compressed."""
        if self.image_format == 'raw':
            return self.image_topic
        return self.image_topic.rstrip('/') + '/compressed'

    def validate(self) -> None:
        """Raise :class:`BagError` for settings that cannot produce a valid bag."""
        if self.image_format not in IMAGE_FORMATS:
            raise BagError(f'Unsupported image format {self.image_format!r}: use one of '
                           f'{IMAGE_FORMATS}.')
        if not 1 <= self.jpeg_quality <= 100:
            raise BagError(f'jpeg_quality must be within 1..100, got {self.jpeg_quality}.')
        if self.encoding not in ENCODINGS:
            raise BagError(f'Unsupported encoding {self.encoding!r}: use one of {ENCODINGS}.')
        if self.storage not in STORAGE_PLUGINS:
            raise BagError(f'Unsupported storage {self.storage!r}: use one of '
                           f'{tuple(STORAGE_PLUGINS)}.')
        if self.version not in BAG_VERSIONS:
            raise BagError(f'Unsupported bag version {self.version}: use 8 (Humble/Iron) or 9 '
                           '(Jazzy and later).')
        if self.rate is not None and not self.rate > 0:
            raise BagError(f'The rate must be positive, got {self.rate}.')
        if self.max_frames is not None and self.max_frames <= 0:
            raise BagError(f'max_frames must be positive, got {self.max_frames}.')
        if self.first_frame < 0 or self.frame_step < 1:
            raise BagError(f'Need first_frame >= 0 and frame_step >= 1, got '
                           f'{self.first_frame} and {self.frame_step}.')
        if not self.image_topic:
            raise BagError('The image topic must not be empty.')
        if Path(self.output).exists():
            raise BagError(f'{self.output} exists already; choose a new folder or remove it '
                           '(bags are never overwritten).')


@dataclass(frozen=True)
class WrittenBag:
    """Summary of a bag written by :func:`write_image_bag`."""

    path: Path
    frame_count: int
    width: int
    height: int
    rate: float
    first_stamp_ns: int


def _header(stamp_ns: int, frame_id: str) -> object:
    types = typestore().types
    sec, nanosec = split_ns(stamp_ns)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_message(frame_rgb: np.ndarray, stamp_ns: int, frame_id: str,
                  encoding: str = 'rgb8') -> object:
    """Build a rosbags sensor_msgs/Image from an RGB frame."""
    pixels = frame_rgb if encoding == 'rgb8' else frame_rgb[..., ::-1]
    height, width = pixels.shape[:2]
    return typestore().types[IMAGE_TYPE](
        header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=width * 3,
        data=np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1))


def depth_image_message(depth_mm: np.ndarray, stamp_ns: int, frame_id: str) -> object:
    """Build a rosbags 16UC1 (little-endian millimetres) sensor_msgs/Image."""
    height, width = depth_mm.shape
    data = np.ascontiguousarray(depth_mm, dtype='<u2').view(np.uint8).reshape(-1)
    return typestore().types[IMAGE_TYPE](
        header=_header(stamp_ns, frame_id), height=height, width=width, encoding='16UC1',
        is_bigendian=0, step=width * 2, data=data)


def compressed_image_message(frame_rgb: np.ndarray, stamp_ns: int, frame_id: str,
                             image_format: str = 'jpeg', jpeg_quality: int = 90) -> object:
    """Build a rosbags sensor_msgs/CompressedImage (``'jpeg'`` or ``'png'``) of an RGB frame."""
    extension = {'jpeg': '.jpg', 'png': '.png'}[image_format]
    options = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == 'jpeg' else []
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(frame_rgb[..., ::-1]), options)
    if not ok:
        raise BagError(f'OpenCV could not encode a {frame_rgb.shape} frame as {image_format}.')
    return typestore().types[COMPRESSED_IMAGE_TYPE](
        header=_header(stamp_ns, frame_id), format=image_format, data=encoded.reshape(-1))


def camera_info_message(width: int, height: int, stamp_ns: int, frame_id: str,
                        camera_matrix: Sequence[float] | None = None) -> object:
    """Build a rosbags sensor_msgs/CameraInfo of an undistorted pinhole camera.

    ``camera_matrix`` is the row-major K (default: :func:`pinhole_intrinsics`).
    """
    store = typestore()
    types = store.types
    k = np.array(camera_matrix if camera_matrix is not None
                 else pinhole_intrinsics(width, height), dtype=np.float64)
    projection = np.zeros(12, dtype=np.float64)
    projection[[0, 1, 2]] = k[[0, 1, 2]]
    projection[[4, 5, 6]] = k[[3, 4, 5]]
    projection[10] = 1.0
    header = _header(stamp_ns, frame_id)
    roi = types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=header, height=height, width=width, distortion_model='plumb_bob',
        d=np.zeros(5, dtype=np.float64), k=k, r=np.eye(3, dtype=np.float64).reshape(-1),
        p=projection, binning_x=0, binning_y=0, roi=roi)


def open_writer(path: Path, *, storage: str = 'mcap', version: int = 9) -> Writer:
    """Create a rosbags :class:`Writer` (not yet opened) for a new bag folder."""
    if storage not in STORAGE_PLUGINS:
        raise BagError(f'Unsupported storage {storage!r}: use one of {tuple(STORAGE_PLUGINS)}.')
    if version not in BAG_VERSIONS:
        raise BagError(f'Unsupported bag version {version}: use 8 or 9.')
    if Path(path).exists():
        raise BagError(f'{path} exists already; choose a new folder or remove it '
                       '(bags are never overwritten).')
    return Writer(Path(path), version=version, storage_plugin=STORAGE_PLUGINS[storage])


def add_typed_connection(writer: Writer, topic: str, msgtype: str,
                         qos: Iterable[Qos] = (RELIABLE_QOS,)) -> object:
    """Add a connection with the full message definition and type hash of ``msgtype``."""
    msgdef, rihs01 = message_definition(msgtype)
    return writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                 offered_qos_profiles=list(qos))


def write_image_bag(spec: ImageBagSpec,
                    source: str | Path | Sequence[str | Path]) -> WrittenBag:
    """Write the frames of one or more video files or image folders into a new bag.

    Several sources are written one after the other. Frame ``i`` is stamped
    ``start_time + i / rate`` (header stamp and bag receive time alike); every frame gets a
    CameraInfo with the same header when a camera-info topic is set. ``max_frames`` applies to
    each source; the rate defaults to the first video's own.
    An RGB-D folder (see :class:`~deeplab_ros.bagtools.sources.RgbdSource`) also gives a 16UC1
    depth image per frame on ``spec.depth_topic`` and its camera.yaml intrinsics.

    Raises:
        BagError: Invalid settings or no frames could be read.
        BagError: The source is missing or unreadable.
    """
    spec.validate()
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    if not paths:
        raise BagError('No video or image folder given to make the bag from.')
    rgbd = [open_rgbd_source(path) for path in paths if is_rgbd_folder(path)]
    if rgbd and len(paths) > 1:
        raise BagError('An RGB-D folder makes a bag on its own; give it as the only source.')
    frame_sources = [] if rgbd else [open_frame_source(path) for path in paths]
    rate = spec.rate or (frame_sources[0].native_rate if frame_sources else None) or 10.0
    start = spec.start_time if spec.start_time is not None else time.time()
    whole_seconds = math.floor(start)  # split first: start * 1e9 would lose ~100 ns
    first_ns = whole_seconds * 1_000_000_000 + int(round((start - whole_seconds) * 1e9))
    period_ns = 1e9 / rate
    store = typestore()
    writer = open_writer(Path(spec.output), storage=spec.storage, version=spec.version)
    count = 0
    width = height = 0
    writer.open()
    try:
        image_type = IMAGE_TYPE if spec.image_format == 'raw' else COMPRESSED_IMAGE_TYPE
        image_conn = add_typed_connection(writer, spec.written_image_topic, image_type)
        info_conn = (add_typed_connection(writer, spec.camera_info_topic, CAMERA_INFO_TYPE)
                     if spec.camera_info_topic else None)
        depth_conn = (add_typed_connection(writer, spec.depth_topic, IMAGE_TYPE)
                      if rgbd else None)
        options = {'max_frames': spec.max_frames, 'resize': spec.resize,
                   'first': spec.first_frame, 'step': spec.frame_step}
        frames = (rgbd[0].frames(**options) if rgbd else
                  ((frame, None, None) for frame_source in frame_sources
                   for frame in frame_source.frames(**options)))
        for frame, depth, matrix in frames:
            height, width = frame.shape[:2]
            stamp_ns = first_ns + int(round(count * period_ns))
            if spec.image_format == 'raw':
                image = image_message(frame, stamp_ns, spec.frame_id, spec.encoding)
            else:
                image = compressed_image_message(frame, stamp_ns, spec.frame_id,
                                                 spec.image_format, spec.jpeg_quality)
            writer.write(image_conn, stamp_ns, store.serialize_cdr(image, image_type))
            if depth_conn is not None:
                writer.write(depth_conn, stamp_ns, store.serialize_cdr(
                    depth_image_message(depth, stamp_ns, spec.frame_id), IMAGE_TYPE))
            if info_conn is not None:
                info = camera_info_message(width, height, stamp_ns, spec.frame_id, matrix)
                writer.write(info_conn, stamp_ns, store.serialize_cdr(info, CAMERA_INFO_TYPE))
            count += 1
    except BaseException:
        writer.close()
        raise
    writer.close()
    if count == 0:
        raise BagError(f'No frames could be read from {source}; the bag {spec.output} is '
                       'empty.')
    return WrittenBag(path=Path(spec.output), frame_count=count, width=width, height=height,
                      rate=rate, first_stamp_ns=first_ns)
