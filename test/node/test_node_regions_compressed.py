"""Objects for grasping and remote viewers, over real DDS on real frames: the regions image
numbering each detection's pixels, and image_transport's ``<topic>/compressed`` twins.

Expected values come from what the node publishes on its raw topics (whatever the model) and
from OpenCV (``support.regions``); compressed messages are read with image_transport's own
decoding rules (``support.codec.decode_like_image_transport``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
import re
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key
from support.codec import decode_like_image_transport
from support.regions import check_region_image
from support.rgbd import rgbd_frame
from support.ros import decoded, image_message, node_under_test, RosTester

RAW = {'labels': Image, 'color': Image, 'overlay': Image, 'regions': Image,
       'detections': Detection2DArray}
COMPRESSED = ('labels', 'color', 'overlay', 'regions')
ROOT = Path(__file__).resolve().parents[2]
MIN_AREA_FRACTION = 0.001  # the node's default detections_min_area_fraction


def _frames(shared: Path) -> list[tuple[str, np.ndarray]]:
    """(frame_id, RGB) of two real RGB-D colour frames and a photo of another size."""
    pets = cv2.imread(str(shared / 'data/photos/pets.jpg'), cv2.IMREAD_COLOR)
    return [('kinect_1', rgbd_frame(1).rgb), ('kinect_4', rgbd_frame(4).rgb),
            ('pets', np.ascontiguousarray(pets[..., ::-1]))]


@pytest.fixture(scope='module')
def segmented(shared: Path):
    """{frame_id: (sent Image, {output: message})} of every frame, every output subscribed."""
    with node_under_test({'input_size': 257}, namespace='grasp',
                         target='/grasp/deeplab_segmentation') as (node, tester):
        collectors = {name: tester.collect(f'/grasp/segmentation/{name}', kind)
                      for name, kind in RAW.items()}
        collectors.update({f'{name}/compressed': tester.collect(
            f'/grasp/segmentation/{name}/compressed', CompressedImage) for name in COMPRESSED})
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/grasp/image')
        assert wait_until(lambda: all(tester.node.count_subscribers(
            f'/grasp/segmentation/{name}') for name in collectors), 10.0)
        result = {}
        for index, (frame_id, rgb) in enumerate(_frames(shared)):
            message = image_message(rgb, frame_id=frame_id, stamp_ns=(index + 1) * 10**9 + 7)
            tester.publisher('/grasp/image').publish(message)
            key = header_key(message.header)

            def found(key=key) -> dict:
                return {name: m for name, collector in collectors.items()
                        for m in collector.snapshot() if header_key(m.header) == key}
            assert wait_until(lambda: len(found()) == len(collectors), 60.0), \
                (frame_id, sorted(found()))
            result[frame_id] = (message, found())
        yield result


def test_regions_number_exactly_the_pixels_of_each_detection(segmented) -> None:
    for frame_id, (sent, got) in segmented.items():
        regions, labels = got['regions'], decoded(got['labels'])
        assert regions.encoding == '16UC1' and regions.is_bigendian == 0
        assert (regions.height, regions.width) == (sent.height, sent.width)
        assert header_key(regions.header) == header_key(sent.header)
        detections = got['detections'].detections
        assert detections, frame_id
        boxes = []
        for index, detection in enumerate(detections):
            assert detection.id == str(index)
            box = detection.bbox
            left = box.center.position.x - box.size_x / 2
            top = box.center.position.y - box.size_y / 2
            boxes.append((int(detection.results[0].hypothesis.class_id), left, top,
                          left + box.size_x, top + box.size_y))
        check_region_image(decoded(regions), labels, boxes,
                           min_area=int(np.ceil(MIN_AREA_FRACTION * labels.size)))


def _documented_object_mask():
    """``object_mask`` of docs/node.md's regions section, defined from the docs' own code."""
    text = (ROOT / 'docs' / 'node.md').read_text()
    section = text.split('### Regions image', 1)[1]
    code = re.search(r'^```python\n(.*?)^```', section, re.MULTILINE | re.DOTALL)
    assert code, 'no python block in the regions section of docs/node.md'
    namespace: dict = {}
    exec(code.group(1), namespace)  # noqa: S102 - the documented snippet, as a user runs it
    return namespace['object_mask']


def test_documented_foundationpose_mask_cuts_one_detection(segmented) -> None:
    object_mask = _documented_object_mask()
    for frame_id, (sent, got) in segmented.items():
        numbers = decoded(got['regions'])
        for index, detection in enumerate(got['detections'].detections):
            mask = object_mask(got['regions'], detection)
            assert mask.encoding == 'mono8'
            assert (mask.height, mask.width) == (sent.height, sent.width)
            assert header_key(mask.header) == header_key(sent.header)
            expected = np.where(numbers == index + 1, 255, 0)
            assert np.array_equal(decoded(mask), expected), (frame_id, index)


def test_compressed_twins_decode_like_image_transport_to_the_raw_images(segmented) -> None:
    for frame_id, (sent, got) in segmented.items():
        for name in COMPRESSED:
            message = got[f'{name}/compressed']
            assert header_key(message.header) == header_key(sent.header)
            encoding, pixels = decode_like_image_transport(message)
            raw = decoded(got[name])
            assert encoding == got[name].encoding, (frame_id, name)
            assert pixels.shape == raw.shape, (frame_id, name)
            if name in ('labels', 'regions'):  # PNG: class ids and region numbers survive
                assert message.format == f'{encoding}; png compressed '
                assert pixels.dtype == raw.dtype
                assert np.array_equal(pixels, raw), (frame_id, name)
            else:  # JPEG of BGR, back to RGB: close, and far from the channel-swapped image
                assert message.format == 'rgb8; jpeg compressed bgr8'
                error = np.abs(pixels.astype(np.int16) - raw).mean()
                swapped = np.abs(pixels.astype(np.int16) - raw[..., ::-1]).mean()
                assert error < 4.0 and error * 3 < swapped, (frame_id, name, error, swapped)


def _frame(tester: RosTester, rgb: np.ndarray, stamp_ns: int) -> tuple:
    message = image_message(rgb, frame_id='lazy', stamp_ns=stamp_ns)
    tester.publisher('/lazy/image').publish(message)
    return header_key(message.header)


def _wanted(node) -> frozenset[str]:
    outputs, camera = node.node._outputs, node.node._cameras[0]  # noqa: SLF001
    return outputs.wanted(camera)


@contextmanager
def _active_lazy_node() -> Iterator[tuple]:
    """(node, tester, labels collector) of an active node in namespace ``lazy``."""
    with node_under_test({'input_size': 129}, namespace='lazy',
                         target='/lazy/deeplab_segmentation') as (node, tester):
        labels = tester.collect('/lazy/segmentation/labels', Image)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/lazy/image')
        yield node, tester, labels


def test_compression_only_while_subscribed_and_jpeg_quality_is_live(shared: Path) -> None:
    rgb = rgbd_frame(2).rgb
    with _active_lazy_node() as (node, tester, labels):
        assert not _wanted(node) & {f'{name}/compressed' for name in COMPRESSED}
        received: list[CompressedImage] = []
        subscription = tester.node.create_subscription(
            CompressedImage, '/lazy/segmentation/overlay/compressed', received.append, 10)
        assert wait_until(lambda: 'overlay/compressed' in _wanted(node), 10.0)
        assert 'overlay' not in _wanted(node)  # the raw overlay is not subscribed
        sizes = {}
        for quality, stamp in ((95, 1_000), (20, 2_000)):
            assert all(r.successful for r in tester.set_parameters({'jpeg_quality': quality}))
            key = _frame(tester, rgb, stamp)
            assert wait_until(lambda: any(header_key(m.header) == key for m in received), 60.0)
            message = next(m for m in received if header_key(m.header) == key)
            sizes[quality] = len(message.data)
        assert sizes[20] < sizes[95]
        # publish_overlay switches the compressed overlay off too.
        assert all(r.successful for r in tester.set_parameters({'publish_overlay': False}))
        assert 'overlay/compressed' not in _wanted(node)
        key = _frame(tester, rgb, 3_000)
        assert wait_until(lambda: any(header_key(m.header) == key
                                      for m in labels.snapshot()), 60.0)
        time.sleep(0.5)
        assert not any(header_key(m.header) == key for m in received)
        tester.node.destroy_subscription(subscription)
        assert tester.set_parameters({'publish_overlay': True})[0].successful
        assert wait_until(lambda: not _wanted(node) & {'overlay/compressed'}, 10.0)


def test_regions_and_detections_are_computed_only_while_subscribed(
        shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No subscriber: no regions found, no regions image drawn (spied in the node's process);
    a subscriber to ``regions/compressed`` alone is enough to have both."""
    from deeplab_ros.ros import frame_outputs  # noqa: PLC0415 - the module the node calls

    calls = {'frame_regions': 0, 'region_image': 0}
    for name in calls:
        original = getattr(frame_outputs, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(frame_outputs, name, spy)
    rgb = rgbd_frame(1).rgb
    with _active_lazy_node() as (node, tester, labels):
        assert not _wanted(node) & {'regions', 'regions/compressed', 'detections'}
        key = _frame(tester, rgb, 1_000)
        assert wait_until(lambda: any(header_key(m.header) == key
                                      for m in labels.snapshot()), 60.0)
        assert calls == {'frame_regions': 0, 'region_image': 0}
        received: list[CompressedImage] = []
        tester.node.create_subscription(
            CompressedImage, '/lazy/segmentation/regions/compressed', received.append, 10)
        assert wait_until(lambda: 'regions/compressed' in _wanted(node), 10.0)
        assert 'regions' not in _wanted(node)
        key = _frame(tester, rgb, 2_000)
        assert wait_until(lambda: any(header_key(m.header) == key for m in received), 60.0)
        assert calls == {'frame_regions': 1, 'region_image': 1}
