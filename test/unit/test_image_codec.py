"""sensor_msgs/Image <-> numpy conversions, on a real photo, plus vision_msgs over DDS."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from support.codec import decode_like_image_transport, encode_image, rgb_to_encoding
from deeplab_ros.core.errors import InputError
from deeplab_ros.core.weights.locations import shared_path
from deeplab_ros.ros.image_codec import (
    compress_image, decode_compressed_image_msg, decode_depth_msg, decode_image,
    decode_image_msg, decode_mono8_msg, encode_16uc1, encode_mono8, encode_rgb8,
    ImageDecodeError, SUPPORTED_ENCODINGS)

COLOUR_EXACT = ('rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3', '8UC4')
GREY = ('mono8', '8UC1', 'mono16', '16UC1')
YUV = ('yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
BAYER = ('bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8')


@pytest.fixture(scope='module')
def photo() -> np.ndarray:
    """The shared pets photo as HxWx3 uint8 RGB (430x512)."""
    path = shared_path('data/photos/pets.jpg')
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f'could not read {path}'
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def header() -> Header:
    result = Header(frame_id='camera')
    result.stamp.sec, result.stamp.nanosec = 12, 345
    return result


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_every_encoding_is_covered() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(COLOUR_EXACT + GREY + YUV + BAYER)


@pytest.mark.parametrize('encoding', COLOUR_EXACT)
def test_colour_round_trip_is_exact(photo: np.ndarray, encoding: str) -> None:
    message = encode_image(photo, encoding, header())
    assert (message.encoding, message.height, message.width) == (encoding, 430, 512)
    assert message.header.frame_id == 'camera' and message.header.stamp.nanosec == 345
    decoded = decode_image_msg(message)
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, photo)


@pytest.mark.parametrize('encoding', GREY)
def test_grey_round_trip_is_exact(photo: np.ndarray, encoding: str) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    decoded = decode_image_msg(encode_image(photo, encoding, header()))
    assert decoded.shape == photo.shape
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], grey)


@pytest.mark.parametrize('encoding', YUV)
def test_yuv422_round_trip_is_close(photo: np.ndarray, encoding: str) -> None:
    decoded = decode_image_msg(encode_image(photo, encoding, header()))
    assert decoded.shape == photo.shape
    assert mean_abs_error(decoded, photo) < 3.0


def test_uyvy_and_yuyv_byte_orders_differ(photo: np.ndarray) -> None:
    uyvy = encode_image(photo, 'yuv422', header())
    swapped = decode_image('yuv422_yuy2', uyvy.height, uyvy.width, uyvy.step, 0, uyvy.data)
    assert mean_abs_error(swapped, photo) > 20.0


@pytest.mark.parametrize('encoding', BAYER)
def test_bayer_round_trip_is_close_and_pattern_specific(photo: np.ndarray,
                                                        encoding: str) -> None:
    message = encode_image(photo, encoding, header())
    error = mean_abs_error(decode_image_msg(message), photo)
    assert error < 10.0
    for other in BAYER:
        if other != encoding:
            wrong = decode_image(other, message.height, message.width, message.step, 0,
                                 message.data)
            assert mean_abs_error(wrong, photo) > 2 * error, (encoding, other)


def test_bayer_mosaic_follows_the_ros_pattern() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    np.testing.assert_array_equal(rgb_to_encoding(rgb, 'bayer_rggb8'), [[10, 20], [20, 30]])
    np.testing.assert_array_equal(rgb_to_encoding(rgb, 'bayer_bggr8'), [[30, 20], [20, 10]])
    np.testing.assert_array_equal(rgb_to_encoding(rgb, 'bayer_gbrg8'), [[20, 30], [10, 20]])
    np.testing.assert_array_equal(rgb_to_encoding(rgb, 'bayer_grbg8'), [[20, 10], [30, 20]])


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_row_padding_is_ignored(photo: np.ndarray, encoding: str) -> None:
    tight = encode_image(photo, encoding, header())
    padded = encode_image(photo, encoding, header(), padding=6)
    assert padded.step == tight.step + 6
    assert len(padded.data) == padded.step * padded.height
    # Fill the padding with noise: it must not leak into the pixels.
    data = np.frombuffer(padded.data, np.uint8).reshape(padded.height, padded.step)
    data[:, tight.step:] = 255
    np.testing.assert_array_equal(decode_image_msg(padded), decode_image_msg(tight))


def test_big_endian_mono16_matches_little_endian(photo: np.ndarray) -> None:
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    # A real 16-bit image: the grey value in the high byte, varying low bits below it.
    low = np.random.default_rng(0).integers(0, 256, grey.shape, dtype=np.uint16)
    values = (grey.astype(np.uint16) << 8) | low
    height, width = values.shape
    little = values.astype('<u2').tobytes()
    big = values.astype('>u2').tobytes()
    assert little != big
    from_little = decode_image('mono16', height, width, 2 * width, 0, little)
    from_big = decode_image('mono16', height, width, 2 * width, 1, big)
    np.testing.assert_array_equal(from_big, from_little)
    np.testing.assert_array_equal(from_big[..., 1], grey)
    # Reading big-endian bytes as little-endian gives the noise instead.
    assert mean_abs_error(decode_image('mono16', height, width, 2 * width, 0, big)[..., 0],
                          grey) > 20.0
    # The encoder's flag round-trips too.
    message = encode_image(photo, 'mono16', header(), is_bigendian=1)
    assert message.is_bigendian == 1
    np.testing.assert_array_equal(decode_image_msg(message)[..., 2], grey)


def test_mono16_keeps_the_high_byte_in_either_byte_order() -> None:
    values = np.array([[0x1234, 0xFF01], [0x00FF, 0x8000]], np.uint16)
    expected = np.array([[0x12, 0xFF], [0x00, 0x80]], np.uint8)
    for dtype, big in (('<u2', 0), ('>u2', 1)):
        data = values.astype(dtype).tobytes()
        decoded = decode_image('16UC1', 2, 2, 4, big, data)
        for channel in range(3):
            np.testing.assert_array_equal(decoded[..., channel], expected)


def test_rgb8_decodes_as_a_view_of_the_message_bytes(photo: np.ndarray) -> None:
    message = encode_rgb8(photo, header())
    assert isinstance(message.data, array.array)
    decoded = decode_image_msg(message)
    assert np.shares_memory(decoded, np.frombuffer(message.data, np.uint8))
    np.testing.assert_array_equal(decoded, photo)


def test_data_may_be_bytes_array_or_list() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    raw = pixels.tobytes()
    for data in (raw, array.array('B', raw), list(raw), bytearray(raw)):
        np.testing.assert_array_equal(decode_image('rgb8', 2, 3, 9, 0, data), pixels)


def test_encode_mono8_and_rgb8_fields(photo: np.ndarray) -> None:
    labels = (np.arange(430 * 512) % 21).astype(np.uint8).reshape(430, 512)
    mono = encode_mono8(labels, header())
    assert (mono.encoding, mono.height, mono.width, mono.step) == ('mono8', 430, 512, 512)
    assert mono.header.stamp.sec == 12
    np.testing.assert_array_equal(
        np.frombuffer(mono.data, np.uint8).reshape(430, 512), labels)
    np.testing.assert_array_equal(decode_mono8_msg(mono), labels)
    # Non-contiguous input (a crop) is encoded row by row correctly.
    crop = photo[10:110, 20:220]
    rgb = encode_rgb8(crop, header())
    assert (rgb.encoding, rgb.height, rgb.width, rgb.step) == ('rgb8', 100, 200, 600)
    np.testing.assert_array_equal(decode_image_msg(rgb), crop)


def test_decode_mono8_msg_gives_the_values_without_row_padding() -> None:
    padded = Image(height=2, width=3, encoding='mono8', step=5,
                   data=bytes([0, 7, 20, 255, 255, 3, 1, 255, 255, 255]))
    decoded = decode_mono8_msg(padded)
    assert decoded.shape == (2, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, [[0, 7, 20], [3, 1, 255]])
    with pytest.raises(ImageDecodeError, match=r"expected a mono8 image.*'rgb8'"):
        decode_mono8_msg(Image(height=1, width=1, encoding='rgb8', step=3, data=bytes(3)))
    with pytest.raises(ImageDecodeError, match=r'data has 9 bytes but a 3x2 mono8 image'):
        decode_mono8_msg(Image(height=2, width=3, encoding='mono8', step=5, data=bytes(9)))


def test_encoders_reject_wrong_arrays(photo: np.ndarray) -> None:
    with pytest.raises(ImageDecodeError, match=r'mono8 needs an HxW uint8 array.*\(2, 2, 3\)'):
        encode_mono8(np.zeros((2, 2, 3), np.uint8), header())
    with pytest.raises(ImageDecodeError, match=r'HxWx3 uint8 RGB.*float32'):
        encode_rgb8(np.zeros((2, 2, 3), np.float32), header())
    with pytest.raises(ImageDecodeError, match=r"unsupported image encoding 'jpeg'"):
        encode_image(photo, 'jpeg', header())


def test_encode_16uc1_fields_and_values() -> None:
    numbers = (np.arange(30 * 40, dtype=np.uint32) * 61 % 65536).astype(np.uint16)
    numbers = numbers.reshape(30, 40)
    message = encode_16uc1(numbers, header())
    assert (message.encoding, message.height, message.width, message.step,
            message.is_bigendian) == ('16UC1', 30, 40, 80, 0)
    assert numbers.max() > 255
    np.testing.assert_array_equal(decode_depth_msg(message), numbers)
    with pytest.raises(ImageDecodeError, match=r'16UC1 needs an HxW uint16 array'):
        encode_16uc1(numbers.astype(np.int32), header())


def test_compressed_labels_and_regions_are_lossless_png_in_image_transport_s_format(
        photo: np.ndarray) -> None:
    labels = (cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY) // 9).astype(np.uint8)  # 29 "classes"
    message = compress_image(labels, 'mono8', header(), 'png')
    assert message.format == 'mono8; png compressed '
    assert (message.header.frame_id, message.header.stamp.sec) == ('camera', 12)
    assert bytes(message.data[:8]) == b'\x89PNG\r\n\x1a\n'
    assert len(message.data) < labels.size  # it is compressed
    encoding, decoded = decode_like_image_transport(message)
    assert encoding == 'mono8'
    np.testing.assert_array_equal(decoded, labels)
    regions = (np.arange(labels.size, dtype=np.uint32) // 97 % 3000).astype(np.uint16)
    regions = regions.reshape(labels.shape)
    message = compress_image(regions, '16UC1', header(), 'png')
    assert message.format == '16UC1; png compressed '
    encoding, decoded = decode_like_image_transport(message)
    assert (encoding, decoded.dtype) == ('16UC1', np.uint16)
    np.testing.assert_array_equal(decoded, regions)


def test_compressed_colour_is_bgr_jpeg_that_image_transport_turns_back_into_rgb(
        photo: np.ndarray) -> None:
    sizes = []
    for quality, tolerance in ((95, 5.0), (40, 12.0)):
        message = compress_image(photo, 'rgb8', header(), 'jpeg', jpeg_quality=quality)
        assert message.format == 'rgb8; jpeg compressed bgr8'
        assert bytes(message.data[:2]) == b'\xff\xd8'
        encoding, decoded = decode_like_image_transport(message)
        assert encoding == 'rgb8' and decoded.shape == photo.shape
        # The colours come back in RGB order: far closer than the channel-swapped photo.
        error = mean_abs_error(decoded, photo)
        assert error < tolerance and error * 2 < mean_abs_error(decoded, photo[..., ::-1])
        # The node's own input decoder reads it back too.
        assert mean_abs_error(decode_compressed_image_msg(message), photo) == error
        sizes.append(len(message.data))
    assert sizes[1] < sizes[0]  # jpeg_quality is applied


def test_compress_image_refuses_what_it_cannot_encode(photo: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"cannot jpeg-compress '16UC1' images"):
        compress_image(np.zeros((4, 4), np.uint16), '16UC1', header(), 'jpeg')
    with pytest.raises(ValueError, match=r"cannot tiff-compress 'mono8' images"):
        compress_image(np.zeros((4, 4), np.uint8), 'mono8', header(), 'tiff')
    with pytest.raises(ImageDecodeError, match=r'mono8 needs an HxW uint8 array'):
        compress_image(photo, 'mono8', header(), 'png')
    with pytest.raises(ImageDecodeError, match=r'HxWx3 uint8 RGB'):
        compress_image(photo[..., 0], 'rgb8', header(), 'jpeg')


@pytest.mark.parametrize(('fields', 'pattern'), [
    (('32FC1', 2, 2, 8, 0, bytes(16)),
     r"unsupported image encoding '32FC1'; supported: rgb8, bgr8"),
    (('rgb8', 0, 4, 12, 0, b''), r'empty rgb8 image: width 4, height 0'),
    (('mono8', 3, 0, 0, 0, b''), r'empty mono8 image: width 0, height 3'),
    (('rgb8', 2, 4, 11, 0, bytes(22)),
     r'step 11 is smaller than one row of 4 rgb8 pixels \(4 x 3 = 12 bytes\)'),
    (('mono16', 2, 4, 7, 0, bytes(14)),
     r'step 7 is smaller than one row of 4 mono16 pixels \(4 x 2 = 8 bytes\)'),
    (('bgr8', 2, 4, 12, 0, bytes(23)),
     r'data has 23 bytes but a 4x2 bgr8 image with step 12 needs step x height = 24'),
    (('yuv422', 2, 3, 6, 0, bytes(12)),
     r'yuv422 packs two pixels per 4 bytes and needs an even width; got width 3'),
    (('yuv422_yuy2', 2, 5, 10, 0, bytes(20)), r'needs an even width; got width 5'),
    (('bayer_rggb8', 1, 4, 4, 0, bytes(4)), r'bayer_rggb8 needs at least 2x2 pixels.*4x1'),
])
def test_malformed_messages_raise_with_the_numbers(fields: tuple, pattern: str) -> None:
    with pytest.raises(ImageDecodeError, match=pattern):
        decode_image(*fields)


def test_decode_error_is_an_input_error() -> None:
    assert issubclass(ImageDecodeError, InputError)


@pytest.mark.ros
def test_vision_msgs_classification_crosses_between_nodes() -> None:
    """A vision_msgs/Classification published by one node arrives intact at another."""
    import vision_msgs.msg as vision_msgs  # noqa: PLC0415
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        sender = rclpy.create_node('codec_test_sender', context=context)
        receiver = rclpy.create_node('codec_test_receiver', context=context)
        received: list = []
        receiver.create_subscription(vision_msgs.Classification, 'classes', received.append, 10)
        publisher = sender.create_publisher(vision_msgs.Classification, 'classes', 10)
        executor.add_node(sender)
        executor.add_node(receiver)
        message = vision_msgs.Classification(header=header(), results=[
            vision_msgs.ObjectHypothesis(class_id='12', score=0.25),
            vision_msgs.ObjectHypothesis(class_id='15', score=0.5)])
        for _ in range(200):  # up to ~10 s for discovery; stops at the first message
            if received:
                break
            if publisher.get_subscription_count():
                publisher.publish(message)
            executor.spin_once(timeout_sec=0.05)
        assert received, 'no vision_msgs/Classification arrived within ~10 s'
        got = received[0]
        assert got.header.frame_id == 'camera' and got.header.stamp.nanosec == 345
        assert [(r.class_id, r.score) for r in got.results] == [('12', 0.25), ('15', 0.5)]
        label_info = vision_msgs.LabelInfo(
            class_map=[vision_msgs.VisionClass(class_id=65535, class_name='unlabeled')],
            threshold=0.5)
        assert label_info.class_map[0].class_id == 65535
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)
