"""sensor_msgs/Image <-> numpy, for every encoding the node accepts.

:func:`decode_image` is a pure function of the message fields and returns an HxWx3 uint8
RGB array; :func:`decode_mono8_msg` returns a mono8 image's HxW values (label images). They
read the message buffer through zero-copy views (an rgb8 frame without row padding comes back
as a view of the message's own bytes) and copy only where a colour conversion has to.
Inconsistent or unsupported messages raise :class:`ImageDecodeError` naming the problem and
the numbers.

:func:`check_image_msg` checks only the fields (cheap, at receipt). The node's encoders
(:func:`encode_mono8`, :func:`encode_rgb8`, :func:`encode_16uc1`) build its output images and
:func:`compress_image` their ``<topic>/compressed`` twins; message classes are imported only
there, so the decoding half needs numpy and OpenCV alone. Test-only encoders of every encoding
live in ``test/support/codec.py``.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

from deeplab_ros.core.errors import InputError

# encoding -> (channels, bytes per channel)
_LAYOUT: dict[str, tuple[int, int]] = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1),
    'mono8': (1, 1), 'mono16': (1, 2),
    '8UC1': (1, 1), '8UC3': (3, 1), '8UC4': (4, 1), '16UC1': (1, 2),
    'yuv422': (2, 1), 'uyvy': (2, 1), 'yuv422_yuy2': (2, 1), 'yuyv': (2, 1),
    'bayer_rggb8': (1, 1), 'bayer_bggr8': (1, 1), 'bayer_gbrg8': (1, 1),
    'bayer_grbg8': (1, 1),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUT)

_UYVY = ('yuv422', 'uyvy')
_YUYV = ('yuv422_yuy2', 'yuyv')

# ROS names a Bayer pattern by the top-left 2x2 block read row by row; OpenCV by the 2nd and
# 3rd pixel of the 2nd row, so every name is offset by one pixel diagonally. Found by
# mosaicking a photo in each ROS pattern and demosaicking with every OpenCV code: the codes
# below give ~7 mean abs error, every other code 26-34.
_BAYER_TO_RGB: dict[str, int] = {
    'bayer_rggb8': cv2.COLOR_BayerBG2RGB,
    'bayer_bggr8': cv2.COLOR_BayerRG2RGB,
    'bayer_gbrg8': cv2.COLOR_BayerGR2RGB,
    'bayer_grbg8': cv2.COLOR_BayerGB2RGB,
}


class ImageDecodeError(InputError):
    """An image message cannot be decoded (or encoded); the text names the problem."""


def bytes_per_pixel(encoding: str) -> int:
    """Bytes one pixel of ``encoding`` takes; raises ImageDecodeError when unsupported."""
    try:
        channels, depth = _LAYOUT[encoding]
    except KeyError:
        raise ImageDecodeError(
            f'unsupported image encoding {encoding!r}; supported: '
            f'{", ".join(SUPPORTED_ENCODINGS)}') from None
    return channels * depth


def _byte_view(data: Any) -> np.ndarray:
    """The message payload as a flat uint8 array, without copying where it can."""
    try:
        return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)
    except TypeError:  # a plain sequence of ints (e.g. a list)
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _pixel_rows(encoding: str, height: int, width: int, step: int,
                data: Any, pixel_bytes: int | None = None) -> np.ndarray:
    """A (height, width * bytes_per_pixel) uint8 view of the pixels, row padding dropped."""
    pixel_bytes = pixel_bytes or bytes_per_pixel(encoding)
    if height <= 0 or width <= 0:
        raise ImageDecodeError(
            f'empty {encoding} image: width {width}, height {height}; both must be positive')
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageDecodeError(
            f'step {step} is smaller than one row of {width} {encoding} pixels '
            f'({width} x {pixel_bytes} = {row_bytes} bytes)')
    buffer = _byte_view(data)
    needed = step * height
    if buffer.size < needed:
        raise ImageDecodeError(
            f'data has {buffer.size} bytes but a {width}x{height} {encoding} image with step '
            f'{step} needs step x height = {needed}')
    return buffer[:needed].reshape(height, step)[:, :row_bytes]


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Convert HxW uint8 grey to HxWx3 uint8 with the grey value in every channel."""
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)


def _checked_rows(encoding: str, height: int, width: int, step: int, data: Any
                  ) -> np.ndarray:
    """:func:`_pixel_rows`, plus the size each packed or mosaicked encoding needs."""
    rows = _pixel_rows(encoding, height, width, step, data)
    if (encoding in _UYVY or encoding in _YUYV) and width % 2:
        raise ImageDecodeError(
            f'{encoding} packs two pixels per 4 bytes and needs an even width; got width '
            f'{width}')
    if encoding in _BAYER_TO_RGB and (height < 2 or width < 2):
        raise ImageDecodeError(
            f'{encoding} needs at least 2x2 pixels to demosaic; got {width}x{height}')
    return rows


def check_image_msg(message: Any) -> None:
    """Raise ImageDecodeError unless a sensor_msgs/Image's fields are consistent.

    Only what the header fields say is checked (encoding supported, sizes, step, data length):
    cheap enough for the executor at receipt; :func:`decode_image_msg` converts later.
    """
    _checked_rows(message.encoding, message.height, message.width, message.step, message.data)


def decode_image(encoding: str, height: int, width: int, step: int, is_bigendian: int,
                 data: Any) -> np.ndarray:
    """Decode sensor_msgs/Image fields into an HxWx3 uint8 RGB array.

    Args:
        encoding: The ROS encoding name (see ``SUPPORTED_ENCODINGS``).
        height: Rows.
        width: Columns.
        step: Bytes per row, padding included.
        is_bigendian: Non-zero when 16-bit samples are stored most significant byte first.
        data: The pixel bytes (``array.array``, ``bytes`` or any buffer).

    Returns:
        HxWx3 uint8 RGB. It may be a read-only view of ``data``: copy it before writing.

    Raises:
        ImageDecodeError: The encoding is unsupported or the fields are inconsistent.
    """
    rows = _checked_rows(encoding, height, width, step, data)
    if encoding == 'rgb8':
        return rows.reshape(height, width, 3)
    if encoding in ('bgr8', '8UC3'):
        return rows.reshape(height, width, 3)[..., ::-1]
    if encoding == 'rgba8':
        return rows.reshape(height, width, 4)[..., :3]
    if encoding in ('bgra8', '8UC4'):
        return rows.reshape(height, width, 4)[..., 2::-1]
    if encoding in ('mono8', '8UC1'):
        return _grey_to_rgb(rows)
    if encoding in ('mono16', '16UC1'):
        # value >> 8 is the most significant byte of each sample: pick it, no 16-bit maths.
        return _grey_to_rgb(rows[:, 0::2] if is_bigendian else rows[:, 1::2])
    if encoding in _UYVY or encoding in _YUYV:
        code = cv2.COLOR_YUV2RGB_UYVY if encoding in _UYVY else cv2.COLOR_YUV2RGB_YUY2
        return cv2.cvtColor(np.ascontiguousarray(rows).reshape(height, width, 2), code)
    return cv2.cvtColor(np.ascontiguousarray(rows), _BAYER_TO_RGB[encoding])


def decode_image_msg(message: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image into HxWx3 uint8 RGB (see :func:`decode_image`)."""
    return decode_image(message.encoding, message.height, message.width, message.step,
                        message.is_bigendian, message.data)


def decode_mono8_msg(message: Any) -> np.ndarray:
    """A mono8 (or 8UC1) sensor_msgs/Image as its HxW uint8 values, row padding dropped.

    For single-channel values that are not grey levels (the node's labels and confidence):
    they come back as they are, not as RGB. It may be a read-only view of the message's data.

    Raises:
        ImageDecodeError: Another encoding, or fields that disagree with the data.
    """
    if message.encoding not in ('mono8', '8UC1'):
        raise ImageDecodeError(
            f'expected a mono8 image (labels, confidence), got {message.encoding!r}')
    return _pixel_rows(message.encoding, message.height, message.width, message.step,
                       message.data)


_JPEG_START = b'\xff\xd8'
_JPEG_END = b'\xff\xd9'


def decode_compressed_image(data: Any, image_format: str = '') -> np.ndarray:
    """Decode sensor_msgs/CompressedImage data (JPEG or PNG) into HxWx3 uint8 RGB.

    ``image_format`` (the message's ``format``, e.g. ``'jpeg'`` or image_transport's
    ``'rgb8; jpeg compressed bgr8'``) only goes into error messages: OpenCV reads the
    container from the data itself. Grey and 16-bit PNGs become 8-bit RGB.

    Raises:
        ImageDecodeError: The data is empty, truncated or not an image OpenCV can read.
    """
    buffer = _byte_view(data)
    described = f'{image_format!r} ' if image_format else ''
    if buffer.size == 0:
        raise ImageDecodeError(f'empty {described}compressed image (0 bytes of data)')
    if buffer[:2].tobytes() == _JPEG_START and _JPEG_END not in buffer[-64:].tobytes():
        # libjpeg decodes a cut-off JPEG with a warning, grey where data is missing.
        raise ImageDecodeError(
            f'truncated {described}JPEG: {buffer.size} bytes without the end-of-image marker')
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(
            f'cannot decode {buffer.size} bytes of {described}compressed data as JPEG or PNG '
            '(truncated or not an image)')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_compressed_image_msg(message: Any) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage into HxWx3 uint8 RGB."""
    return decode_compressed_image(message.data, message.format)


#: Depth encodings: 16-bit unsigned millimetres or 32-bit float metres (REP 118).
DEPTH_ENCODINGS: dict[str, np.dtype] = {
    '16UC1': np.dtype(np.uint16), 'mono16': np.dtype(np.uint16), '32FC1': np.dtype(np.float32)}


def decode_depth(encoding: str, height: int, width: int, step: int, is_bigendian: int,
                 data: Any) -> np.ndarray:
    """Decode a depth image's fields into HxW uint16 (millimetres) or float32 (metres).

    Raises:
        ImageDecodeError: Another encoding, or fields that disagree with the data.
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError(
            f'depth encoding {encoding!r} is not supported; use 16UC1 (millimetres) or 32FC1 '
            '(metres)')
    dtype = DEPTH_ENCODINGS[encoding].newbyteorder('>' if is_bigendian else '<')
    rows = _pixel_rows(encoding, height, width, step, data, pixel_bytes=dtype.itemsize)
    depth = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    return depth.astype(DEPTH_ENCODINGS[encoding], copy=False)


def decode_depth_msg(message: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image depth image (see :func:`decode_depth`)."""
    return decode_depth(message.encoding, message.height, message.width, message.step,
                        message.is_bigendian, message.data)


def _check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(
            f'expected an HxWx3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}')


def _pixels_to_bytes(pixels: np.ndarray) -> array.array:
    """One copy of a C-ordered array's bytes into the ``array.array`` Image.data holds.

    Faster than ``msg.data = pixels.tobytes()`` (two copies; docs/benchmarks.md#message-encoding).
    """
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8).data)
    return data


def _image(pixels: np.ndarray, encoding: str, header: Any) -> Any:
    from sensor_msgs.msg import Image

    height, width = pixels.shape[:2]
    message = Image(header=header, height=height, width=width, encoding=encoding,
                    is_bigendian=0)
    message.step = pixels.nbytes // height
    message.data = _pixels_to_bytes(pixels)
    return message


def encode_mono8(array_hw: np.ndarray, header: Any) -> Any:
    """A mono8 Image of an HxW uint8 array (labels, confidence) with ``header``."""
    if array_hw.ndim != 2 or array_hw.dtype != np.uint8:
        raise ImageDecodeError(f'mono8 needs an HxW uint8 array, got shape {array_hw.shape} '
                               f'dtype {array_hw.dtype}')
    return _image(array_hw, 'mono8', header)


def encode_rgb8(rgb: np.ndarray, header: Any) -> Any:
    """An rgb8 Image of an HxWx3 uint8 RGB array with ``header``."""
    _check_rgb(rgb)
    return _image(rgb, 'rgb8', header)


def encode_16uc1(array_hw: np.ndarray, header: Any) -> Any:
    """A 16UC1 Image (little-endian) of an HxW uint16 array (region numbers) with ``header``."""
    if array_hw.ndim != 2 or array_hw.dtype != np.uint16:
        raise ImageDecodeError(f'16UC1 needs an HxW uint16 array, got shape {array_hw.shape} '
                               f'dtype {array_hw.dtype}')
    return _image(array_hw.astype('<u2', copy=False), '16UC1', header)


#: Codecs of :func:`compress_image`: image_transport's ``compressed`` formats.
COMPRESSION_CODECS = ('png', 'jpeg')
#: PNG compression level: image_transport's ``png_level`` default.
PNG_LEVEL = 3
#: The output encodings :func:`compress_image` takes -> (pixel dtype, codecs).
_COMPRESSIBLE: dict[str, tuple[Any, tuple[str, ...]]] = {
    'rgb8': (np.uint8, COMPRESSION_CODECS), 'mono8': (np.uint8, COMPRESSION_CODECS),
    '16UC1': (np.uint16, ('png',))}


def compressed_format(encoding: str, codec: str) -> str:
    """The CompressedImage ``format`` image_transport's ``compressed`` publisher writes.

    ``'<encoding>; <codec> compressed <target>'``: the target is ``bgr8`` for colour (rgb8)
    images, which are converted to BGR before encoding, ``mono8`` for grey JPEG and empty
    for grey PNG, which keeps 8 or 16 bits as they are (compressed_publisher.cpp of
    image_transport_plugins). Its subscriber takes the encoding before the ``;`` and turns
    ``compressed bgr`` data back into RGB for an rgb8 encoding.

    Raises:
        ValueError: Not a codec of :data:`COMPRESSION_CODECS` for this encoding.
    """
    if codec not in _COMPRESSIBLE.get(encoding, (None, ()))[1]:
        raise ValueError(f'cannot {codec}-compress {encoding!r} images')
    if encoding == 'rgb8':
        target = 'bgr8'
    else:
        target = 'mono8' if codec == 'jpeg' else ''
    return f'{encoding}; {codec} compressed {target}'


def compress_image(pixels: np.ndarray, encoding: str, header: Any, codec: str, *,
                   jpeg_quality: int = 95) -> Any:
    """A CompressedImage of an output image, as image_transport's ``compressed`` plugin.

    Args:
        pixels: HxWx3 uint8 RGB (``rgb8``), HxW uint8 (``mono8``) or HxW uint16 (``16UC1``,
            PNG only).
        encoding: The raw image's ROS encoding, the first part of ``format``.
        header: The message header.
        codec: ``'png'`` (lossless: class ids and region numbers survive) or ``'jpeg'``.
        jpeg_quality: 1-100, for JPEG.

    Raises:
        ValueError: An encoding or codec it does not take.
        ImageDecodeError: ``pixels`` do not fit ``encoding``.
    """
    image_format = compressed_format(encoding, codec)
    if encoding == 'rgb8':
        _check_rgb(pixels)
        pixels = pixels[..., ::-1]  # OpenCV writes BGR
    elif pixels.ndim != 2 or pixels.dtype != _COMPRESSIBLE[encoding][0]:
        raise ImageDecodeError(f'{encoding} needs an HxW {np.dtype(_COMPRESSIBLE[encoding][0])} '
                               f'array, got shape {pixels.shape} dtype {pixels.dtype}')
    if codec == 'png':
        parameters = [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL]
    else:
        parameters = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, data = cv2.imencode(f'.{codec}', np.ascontiguousarray(pixels), parameters)
    if not ok:
        raise ImageDecodeError(f'OpenCV could not {codec}-compress a {encoding} image of '
                               f'shape {pixels.shape}')
    from sensor_msgs.msg import CompressedImage

    message = CompressedImage(header=header, format=image_format)
    message.data = _pixels_to_bytes(data)
    return message
