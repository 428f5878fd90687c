"""Test-only codecs: RGB to every supported encoding, depth, clouds, image_transport's decoder.

The node only decodes these encodings (and encodes mono8/rgb8/16UC1 outputs); the tests build
input messages with these helpers, read point clouds back with :func:`cloud_array` and
compressed outputs with :func:`decode_like_image_transport`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from sensor_msgs.msg import Image, PointCloud2

from deeplab_ros.ros.image_codec import bytes_per_pixel, ImageDecodeError
from deeplab_ros.ros.spatial_messages import POINT_DTYPE

_UYVY = ('yuv422', 'uyvy')
_YUYV = ('yuv422_yuy2', 'yuyv')
# ROS Bayer pattern -> channel index (0 R, 1 G, 2 B) of the top-left 2x2 block, row by row.
_BAYER_BLOCK: dict[str, tuple[int, int, int, int]] = {
    'bayer_rggb8': (0, 1, 1, 2), 'bayer_bggr8': (2, 1, 1, 0),
    'bayer_gbrg8': (1, 2, 0, 1), 'bayer_grbg8': (1, 0, 2, 1),
}


def rgb_to_encoding(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """Convert HxWx3 uint8 RGB to the pixel array of ``encoding``.

    mono16 samples are the grey value in both bytes (so ``>> 8`` restores it), yuv422 is
    BT.601 limited range (what OpenCV's decoder expects) and Bayer mosaics keep one colour
    per pixel in the named ROS pattern.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageDecodeError(
            f'expected an HxWx3 uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}')
    bytes_per_pixel(encoding)
    if encoding == 'rgb8':
        return rgb
    if encoding in ('bgr8', '8UC3'):
        return rgb[..., ::-1]
    opaque = np.full(rgb.shape[:2], 255, np.uint8)
    if encoding == 'rgba8':
        return np.dstack([rgb, opaque])
    if encoding in ('bgra8', '8UC4'):
        return np.dstack([rgb[..., ::-1], opaque])
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if encoding in ('mono8', '8UC1'):
        return grey
    if encoding in ('mono16', '16UC1'):
        return grey.astype(np.uint16) * 257
    if encoding in _UYVY or encoding in _YUYV:
        if rgb.shape[1] % 2:
            raise ImageDecodeError(f'{encoding} needs an even width; got {rgb.shape[1]}')
        red, green, blue = (rgb[..., index].astype(np.float32) for index in range(3))
        luma = 16 + 0.257 * red + 0.504 * green + 0.098 * blue
        u = 128 - 0.148 * red - 0.291 * green + 0.439 * blue
        v = 128 + 0.439 * red - 0.368 * green - 0.071 * blue
        chroma = np.empty(rgb.shape[:2], np.float32)
        chroma[:, 0::2] = (u[:, 0::2] + u[:, 1::2]) / 2
        chroma[:, 1::2] = (v[:, 0::2] + v[:, 1::2]) / 2
        planes = [chroma, luma] if encoding in _UYVY else [luma, chroma]
        return np.dstack(planes).round().clip(0, 255).astype(np.uint8)
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for index, channel in enumerate(_BAYER_BLOCK[encoding]):
        row, col = divmod(index, 2)
        mosaic[row::2, col::2] = rgb[row::2, col::2, channel]
    return mosaic


def _image(pixels: np.ndarray, encoding: str, header: Any, is_bigendian: int = 0,
           padding: int = 0) -> Image:
    height, width = pixels.shape[:2]
    message = Image(header=header, height=height, width=width, encoding=encoding,
                    is_bigendian=int(bool(is_bigendian)))
    rows = np.ascontiguousarray(pixels).reshape(height, -1).view(np.uint8)
    if padding:
        padded = np.zeros((height, rows.shape[1] + padding), np.uint8)
        padded[:, :rows.shape[1]] = rows
        rows = padded
    message.step = rows.shape[1]
    message.data = rows.tobytes()
    return message


def encode_image(rgb: np.ndarray, encoding: str, header: Any, *, is_bigendian: int = 0,
                 padding: int = 0) -> Image:
    """A sensor_msgs/Image of an HxWx3 uint8 RGB array converted to ``encoding``.

    Args:
        rgb: HxWx3 uint8 RGB.
        encoding: Any of ``SUPPORTED_ENCODINGS``.
        header: The std_msgs/Header to copy into the message.
        is_bigendian: Store 16-bit samples most significant byte first.
        padding: Extra bytes at the end of every row (``step`` grows by this much).
    """
    pixels = rgb_to_encoding(rgb, encoding)
    if pixels.dtype == np.uint16:
        pixels = pixels.astype('>u2' if is_bigendian else '<u2')
    return _image(pixels, encoding, header, is_bigendian, padding)


def encode_depth(depth: np.ndarray, header: Any) -> Image:
    """A depth Image of HxW uint16 millimetres (16UC1) or float32 metres (32FC1)."""
    encodings = {np.dtype(np.uint16): '16UC1', np.dtype(np.float32): '32FC1'}
    if depth.ndim != 2 or depth.dtype not in encodings:
        raise ImageDecodeError(f'depth needs an HxW uint16 or float32 array, got shape '
                               f'{depth.shape} dtype {depth.dtype}')
    return _image(depth.astype(depth.dtype.newbyteorder('<'), copy=False),
                  encodings[depth.dtype], header)


def cloud_array(message: PointCloud2) -> np.ndarray:
    """The POINT_DTYPE array of a PointCloud2 built by the node (organised: HxW)."""
    points = np.frombuffer(bytes(message.data), dtype=POINT_DTYPE)
    return points.reshape(message.height, message.width) if message.height > 1 else points


# The decoder of image_transport_plugins' compressed_image_transport, which RViz and every C++
# image_transport subscriber of a ``<topic>/compressed`` topic run:
# compressed_image_transport/src/compressed_subscriber.cpp at commit 7404d772b66f (rolling;
# the humble branch has the same rules).
#: :143-159: the conversion of ``compressed bgr`` data, by (colour) encoding ...
_FROM_BGR = {'rgb8': cv2.COLOR_BGR2RGB, 'rgb16': cv2.COLOR_BGR2RGB,
             'rgba8': cv2.COLOR_BGR2RGBA, 'rgba16': cv2.COLOR_BGR2RGBA,
             'bgra8': cv2.COLOR_BGR2BGRA, 'bgra16': cv2.COLOR_BGR2BGRA}
#: ... and :163-170: of other colour data (taken as RGB).
_FROM_RGB = {'bgr8': cv2.COLOR_RGB2BGR, 'bgr16': cv2.COLOR_RGB2BGR,
             'bgra8': cv2.COLOR_RGB2BGRA, 'bgra16': cv2.COLOR_RGB2BGRA,
             'rgba8': cv2.COLOR_RGB2RGBA, 'rgba16': cv2.COLOR_RGB2RGBA}


def _sixteen_bits(encoding: str) -> bool:
    """sensor_msgs::image_encodings::bitDepth(encoding) == 16."""
    return encoding.endswith('16') or encoding.startswith(('16U', '16S'))


def decode_like_image_transport(message: Any) -> tuple[str, np.ndarray]:
    """(encoding, pixels) of a CompressedImage, as image_transport's subscriber gets them.

    Ported from compressed_subscriber.cpp (see above), line by line:

    - :118 ``cv::imdecode(data, flag)``, the flag of the ``mode`` parameter, by default
      ``unchanged`` (:66-67) = IMREAD_UNCHANGED (:195-196): 8 or 16 bits, channels as stored;
    - :121-136 no ``;`` in ``format``: the encoding is ``mono8`` or ``bgr8`` by channel count;
    - :139-141 else the encoding is the text before the ``;``;
    - :143-159 for a colour encoding (sensor_msgs' ``isColor``) with ``compressed bgr`` after
      the ``;``, BGR becomes RGB for rgb8/rgb16 (and gains alpha for the 4-channel ones);
    - :160-171 colour without ``compressed bgr``: RGB data is swapped for bgr8/bgr16;
    - :173-175 a 16-bit encoding from JPEG is scaled by 256.
    """
    data = np.frombuffer(bytes(message.data), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    assert image is not None and image.size, f'imdecode failed on {len(data)} bytes'
    image_format = message.format
    if ';' not in image_format:
        channels = 1 if image.ndim == 2 else image.shape[2]
        return {1: 'mono8', 3: 'bgr8'}[channels], image
    encoding, rest = image_format.split(';', 1)
    conversions = _FROM_BGR if 'compressed bgr' in rest else _FROM_RGB
    if encoding in conversions:
        image = cv2.cvtColor(image, conversions[encoding])
    if 'jpeg' in image_format and _sixteen_bits(encoding):
        image = image.astype(np.uint16) * 256
    return encoding, image
