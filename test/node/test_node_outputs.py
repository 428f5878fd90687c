"""What the active node publishes: headers, sizes, classes, colour/overlay, cameras, bursts."""

from __future__ import annotations

from pathlib import Path
import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Classification

from deeplab_ros.core.labels import voc_labels
from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key
from support.ros import decoded, image_message, node_under_test, RosTester


def _photo(shared: Path, name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(shared / 'data/photos' / name))[..., ::-1])


def _bring_up(tester: RosTester, *inputs: str) -> None:
    assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
    for topic in inputs:
        assert tester.wait_for_subscriber(topic)


def test_real_photos_labels_classes_colour_and_overlay(shared: Path) -> None:
    parameters = {'weights': 'pretrained:deeplabv3_mnv2_dm05_float', 'input_size': 321}
    with node_under_test(parameters) as (node, tester):
        outputs = {name: tester.collect(f'/segmentation/{name}', Image)
                   for name in ('labels', 'color', 'overlay')}
        classes = tester.collect('/segmentation/classes', Classification)
        infos = tester.collect('/segmentation/camera_info', CameraInfo)
        _bring_up(tester, '/image')
        assert wait_until(lambda: tester.node.count_subscribers('/segmentation/overlay'), 5)
        info = CameraInfo(width=640, height=480, distortion_model='plumb_bob')
        tester.publisher('/camera_info', CameraInfo).publish(info)
        time.sleep(0.3)
        photos = {'basketball1.png': 'person', 'pets.jpg': 'dog'}
        sent = {}
        for index, (name, expected) in enumerate(photos.items()):
            rgb = _photo(shared, name)
            message = image_message(rgb, frame_id=f'cam_{index}', stamp_ns=10**9 * (index + 1))
            sent[header_key(message.header)] = (rgb, expected)
            tester.publisher('/image').publish(message)
            assert classes.wait_for(index + 1, 60.0)
            for collector in outputs.values():
                assert collector.wait_for(index + 1, 30.0)
        palette = voc_labels().palette_lut()
        for index, message in enumerate(outputs['labels'].snapshot()):
            rgb, expected = sent[header_key(message.header)]
            labels = decoded(message)
            assert message.encoding == 'mono8'
            assert labels.shape == rgb.shape[:2]
            color = decoded(outputs['color'].snapshot()[index])
            overlay = decoded(outputs['overlay'].snapshot()[index])
            assert header_key(outputs['color'].snapshot()[index].header) == \
                header_key(message.header)
            assert np.array_equal(color, palette[labels])
            blend = np.round(rgb * 0.5 + color.astype(np.float64) * 0.5)
            blend[labels == 0] = rgb[labels == 0]  # background pixels keep the frame
            assert np.abs(overlay.astype(np.int16) - blend.astype(np.int16)).max() <= 1
            result = classes.snapshot()[index]
            assert header_key(result.header) == header_key(message.header)
            names = voc_labels().class_names
            fractions = {names[int(hyp.class_id)]: hyp.score for hyp in result.results}
            assert fractions.get(expected, 0.0) > 0.02, (expected, fractions)
            counts = np.bincount(labels.ravel(), minlength=21) / labels.size
            assert fractions[expected] == pytest.approx(
                counts[voc_labels().class_names.index(expected)], abs=1e-6)
        assert infos.wait_for(1)
        assert header_key(infos.snapshot()[-1].header) in sent


def test_two_cameras_keep_their_own_headers(shared: Path) -> None:
    with node_under_test({'input_size': 129, 'cameras': ['front', 'rear']}) as (node, tester):
        front = tester.collect('/front/segmentation/labels', Image)
        rear = tester.collect('/rear/segmentation/labels', Image)
        _bring_up(tester, '/front/image', '/rear/image')
        photo = _photo(shared, 'pets.jpg')
        small = np.ascontiguousarray(photo[::4, ::4])
        for index in range(5):
            tester.publisher('/front/image').publish(
                image_message(photo, frame_id='front_optical', stamp_ns=1000 + index))
            tester.publisher('/rear/image').publish(
                image_message(small, frame_id='rear_optical', stamp_ns=2000 + index))
            time.sleep(0.3)
        assert front.wait_for(1, 30.0) and rear.wait_for(1, 30.0)
        time.sleep(1.0)
        for message in front.snapshot():
            assert message.header.frame_id == 'front_optical'
            assert 1000 <= message.header.stamp.nanosec < 1005
            assert (message.height, message.width) == photo.shape[:2]
        for message in rear.snapshot():
            assert message.header.frame_id == 'rear_optical'
            assert 2000 <= message.header.stamp.nanosec < 2005
            assert (message.height, message.width) == small.shape[:2]


def test_a_burst_is_not_queued_the_newest_frames_win(shared: Path) -> None:
    """While a frame is in inference, a burst of newer ones leaves only the newest waiting.

    The worker is held inside its first inference until the whole burst has been received, so
    the outcome does not depend on how fast the host runs the model: frame 1 and the newest
    frame are processed, every frame in between is counted as skipped.
    """
    with node_under_test({'input_size': 257}) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        diagnostics = tester.collect('/diagnostics', DiagnosticArray)
        _bring_up(tester, '/image')
        segmenter = node.node._segmenter  # noqa: SLF001 - hold the worker inside inference
        in_inference, release = threading.Event(), threading.Event()
        segment_batch = segmenter.segment_batch

        def held_segment_batch(*args, **kwargs):
            in_inference.set()
            assert release.wait(60.0), 'the test never released the worker'
            return segment_batch(*args, **kwargs)
        segmenter.segment_batch = held_segment_batch
        photo = _photo(shared, 'basketball1.png')
        publisher = tester.publisher('/image')
        burst = 40
        publisher.publish(image_message(photo, stamp_ns=1))
        assert in_inference.wait(30.0), 'frame 1 never reached inference'
        stats = node.node.statistics
        for index in range(2, burst + 1):
            publisher.publish(image_message(photo, stamp_ns=index))
            # Paced by receipt: the sensor-data subscription keeps only the newest messages.
            assert wait_until(lambda: stats.received == index, 30.0), index
        release.set()
        assert wait_until(lambda: labels.count() == 2, 60.0), labels.count()
        stamps = [message.header.stamp.nanosec for message in labels.snapshot()]
        assert stamps == [1, burst], 'the frame in inference, then only the newest one'
        assert (stats.processed, stats.skipped) == (2, burst - 2)
        expected = {'frames_received': burst, 'frames_processed': 2, 'frames_skipped': burst - 2}

        def reported() -> dict[str, int]:  # the counters of one (the latest) diagnostics message
            return {key: _diagnostic(diagnostics, key) for key in expected}
        assert wait_until(lambda: diagnostics.count() > 0 and reported() == expected, 10.0), \
            reported()
        # Nothing queued behind: no further output arrives after the newest frame's.
        assert not wait_until(lambda: labels.count() > 2, 1.0)


def _diagnostic(collector, key: str, cast=int):
    for status in collector.snapshot()[-1].status:
        for item in status.values:
            if item.key == key:
                return cast(float(item.value)) if cast is int else cast(item.value)
    raise KeyError(key)


def test_confidence_is_published_by_default_and_computed_only_while_subscribed(
        shared: Path) -> None:
    """``publish_confidence`` is on by default, yet the segmenter is asked for the
    confidence only for frames that have a subscriber to it (or to an output needing it)."""
    with node_under_test({'input_size': 129}) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        _bring_up(tester, '/image')
        segmenter = node.node._segmenter  # noqa: SLF001 - note what each batch asks for
        asked: list[bool] = []
        segment_batch = segmenter.segment_batch

        def noting_segment_batch(*args, **kwargs):
            asked.append(bool(kwargs.get('confidence')))
            return segment_batch(*args, **kwargs)
        segmenter.segment_batch = noting_segment_batch
        photo = _photo(shared, 'basketball1.png')
        publisher = tester.publisher('/image')

        def segment(stamp: int) -> None:
            before = labels.count()
            publisher.publish(image_message(photo, stamp_ns=stamp))
            assert wait_until(lambda: labels.count() > before, 60.0), stamp

        segment(1)
        assert asked == [False]
        received: list[Image] = []
        subscription = tester.node.create_subscription(
            Image, '/segmentation/confidence', received.append, 10)
        assert wait_until(
            lambda: node.node.count_subscribers('/segmentation/confidence') > 0, 10.0)
        segment(2)
        assert asked == [False, True]
        assert wait_until(lambda: len(received) == 1, 10.0)
        assert (received[0].encoding, received[0].height, received[0].width) == \
            ('mono8', *photo.shape[:2])
        assert received[0].header.stamp.nanosec == 2
        tester.node.destroy_subscription(subscription)
        assert wait_until(
            lambda: node.node.count_subscribers('/segmentation/confidence') == 0, 10.0)
        segment(3)
        assert asked == [False, True, False]
