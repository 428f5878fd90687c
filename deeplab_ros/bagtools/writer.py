"""Write rosbag2 bags of camera frames (sensor_msgs/Image + CameraInfo) without ROS.

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

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from deeplab_ros.bagtools.sources import open_frame_source, pinhole_intrinsics
from deeplab_ros.bagtools.typedefs import message_definition, typestore

IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
STORAGE_PLUGINS = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
BAG_VERSIONS = (8, 9)
ENCODINGS = ('rgb8', 'bgr8')
_INFINITE = QosTime(sec=9223372036, nsec=854775807)
RELIABLE_QOS = Qos(history=QosHistory.KEEP_LAST, depth=10, reliability=QosReliability.RELIABLE,
                   durability=QosDurability.VOLATILE, deadline=_INFINITE, lifespan=_INFINITE,
                   liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_INFINITE,
                   avoid_ros_namespace_conventions=False)


class BagError(ValueError):
    """A bag cannot be written, read or played; the message says which bag and why."""


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
        encoding: ``'rgb8'`` or ``'bgr8'``.
        storage: ``'mcap'`` or ``'sqlite3'``.
        version: rosbag2 metadata version, 8 (Humble/Iron) or 9 (Jazzy and later).
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

    def validate(self) -> None:
        """Raise :class:`BagError` for settings that cannot produce a valid bag."""
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


def _split_ns(stamp_ns: int) -> tuple[int, int]:
    return stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000


def image_message(frame_rgb: np.ndarray, stamp_ns: int, frame_id: str,
                  encoding: str = 'rgb8') -> object:
    """Build a rosbags sensor_msgs/Image from an RGB frame."""
    store = typestore()
    types = store.types
    pixels = frame_rgb if encoding == 'rgb8' else frame_rgb[..., ::-1]
    height, width = pixels.shape[:2]
    sec, nanosec = _split_ns(stamp_ns)
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)
    return types[IMAGE_TYPE](
        header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
        step=width * 3, data=np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1))


def camera_info_message(width: int, height: int, stamp_ns: int, frame_id: str) -> object:
    """Build a rosbags sensor_msgs/CameraInfo of an undistorted pinhole camera."""
    store = typestore()
    types = store.types
    k = np.array(pinhole_intrinsics(width, height), dtype=np.float64)
    projection = np.zeros(12, dtype=np.float64)
    projection[[0, 1, 2]] = k[[0, 1, 2]]
    projection[[4, 5, 6]] = k[[3, 4, 5]]
    projection[10] = 1.0
    sec, nanosec = _split_ns(stamp_ns)
    header = types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)
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
    """Write the frames of a video file or image folder (or of several, one after the other)
    into a new bag.

    Frame ``i`` is stamped ``start_time + i / rate`` (header stamp and bag receive time
    alike); every frame gets a CameraInfo with the same header when a camera-info topic is set.
    ``max_frames`` applies to each source; the rate defaults to the first video's own.

    Raises:
        BagError: Invalid settings or no frames could be read.
        FileNotFoundError / ValueError: The source is missing or unreadable.
    """
    spec.validate()
    paths = [source] if isinstance(source, (str, Path)) else list(source)
    if not paths:
        raise BagError('No video or image folder given to make the bag from.')
    frame_sources = [open_frame_source(path) for path in paths]
    rate = spec.rate or frame_sources[0].native_rate or 10.0
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
        image_conn = add_typed_connection(writer, spec.image_topic, IMAGE_TYPE)
        info_conn = (add_typed_connection(writer, spec.camera_info_topic, CAMERA_INFO_TYPE)
                     if spec.camera_info_topic else None)
        frames = (frame for frame_source in frame_sources
                  for frame in frame_source.frames(max_frames=spec.max_frames,
                                                   resize=spec.resize, first=spec.first_frame,
                                                   step=spec.frame_step))
        for frame in frames:
            height, width = frame.shape[:2]
            stamp_ns = first_ns + int(round(count * period_ns))
            image = image_message(frame, stamp_ns, spec.frame_id, spec.encoding)
            writer.write(image_conn, stamp_ns, store.serialize_cdr(image, IMAGE_TYPE))
            if info_conn is not None:
                info = camera_info_message(width, height, stamp_ns, spec.frame_id)
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
