"""What ROS consumers rely on: per-endpoint QoS profiles, camera_info handling, /diagnostics."""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from deeplab_ros.ros import segmentation_node
from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key
from deeplab_ros.streaming import statistics
from support.ros import image_message, InProcessNode, node_under_test, RosTester


def _up(tester: RosTester, image_topic: str) -> None:
    assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
    assert tester.wait_for_subscriber(image_topic)


def _reliability(tester: RosTester, topic: str, publishers: bool) -> ReliabilityPolicy:
    infos = (tester.node.get_publishers_info_by_topic(topic) if publishers
             else tester.node.get_subscriptions_info_by_topic(topic))
    return infos[0].qos_profile.reliability


@pytest.mark.parametrize('overridden, other', [('/image', '/camera_info'),
                                               ('/camera_info', '/image')])
def test_qos_override_of_one_endpoint_leaves_the_others_alone(overridden: str,
                                                              other: str) -> None:
    parameters = {'input_size': 65,
                  'qos_overrides./segmentation/labels.publisher.reliability': 'best_effort',
                  f'qos_overrides.{overridden}.subscription.reliability': 'reliable'}
    with node_under_test(parameters) as (node, tester):
        _up(tester, '/image')
        assert wait_until(lambda: tester.node.get_subscriptions_info_by_topic('/camera_info'),
                          5.0)
        assert _reliability(tester, '/segmentation/labels', True) == \
            ReliabilityPolicy.BEST_EFFORT
        for topic in ('/segmentation/classes', '/segmentation/color',
                      '/segmentation/camera_info', '/segmentation/label_info'):
            assert _reliability(tester, topic, True) == ReliabilityPolicy.RELIABLE, topic
        assert _reliability(tester, overridden, False) == ReliabilityPolicy.RELIABLE
        assert _reliability(tester, other, False) == ReliabilityPolicy.BEST_EFFORT
        assert qos_profile_sensor_data.reliability == ReliabilityPolicy.BEST_EFFORT
        assert segmentation_node.OUTPUT_QOS.reliability == ReliabilityPolicy.RELIABLE


def test_camera_info_is_copied_per_frame_and_checked_against_the_frame_size() -> None:
    with node_under_test({'input_size': 65}) as (node, tester):
        infos = tester.collect('/segmentation/camera_info', CameraInfo)
        labels = tester.collect('/segmentation/labels', Image)
        _up(tester, '/image')
        info_publisher = tester.publisher('/camera_info', CameraInfo)
        assert wait_until(lambda: info_publisher.get_subscription_count() > 0, 10.0)
        info = CameraInfo(width=64, height=48, distortion_model='plumb_bob')
        info.header.frame_id = 'info_frame'
        info.k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
        info_publisher.publish(info)
        camera = node.node._cameras[0]  # noqa: SLF001 - what the node keeps between frames
        assert wait_until(lambda: camera.camera_info is not None, 5.0)
        frame = np.full((48, 64, 3), 90, np.uint8)
        sent = []
        for index in range(2):
            message = image_message(frame, frame_id='cam', stamp_ns=10**9 * (index + 1))
            sent.append(header_key(message.header))
            tester.publisher('/image').publish(message)
            assert infos.wait_for(index + 1, 30.0)
        assert [header_key(m.header) for m in infos.snapshot()] == sent
        assert list(infos.snapshot()[0].k) == list(info.k)
        assert camera.camera_info.header.frame_id == 'info_frame'  # never overwritten

        info_publisher.publish(CameraInfo(width=640, height=480))
        assert wait_until(lambda: camera.camera_info.width == 640, 5.0)
        tester.publisher('/image').publish(image_message(frame, frame_id='cam', stamp_ns=3))
        assert labels.wait_for(3, 30.0)
        time.sleep(0.5)
        assert infos.count() == 2  # a camera_info for another size is not republished
        assert node.node.statistics.camera_info_mismatches == 1


def _statuses(collector, name: str) -> list[DiagnosticStatus]:
    return [status for array in collector.snapshot() for status in array.status
            if status.name == name]


def test_diagnostics_window_silent_camera_and_namespaced_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, 'BAD_INPUT_WINDOW_S', 1.0)
    monkeypatch.setattr(segmentation_node, 'NO_IMAGE_WARN_S', 1.5)
    node = InProcessNode({'input_size': 65, 'diagnostics_period': 0.2}, namespace='front')
    tester = RosTester('/front/deeplab_segmentation')
    name = 'front/deeplab_segmentation: segmentation'
    stop = threading.Event()
    try:
        diagnostics = tester.collect('/diagnostics', DiagnosticArray)
        _up(tester, '/front/image')
        frame = np.full((48, 64, 3), 90, np.uint8)

        def camera() -> None:
            while not stop.is_set():
                tester.publisher('/front/image').publish(image_message(frame, stamp_ns=1))
                time.sleep(0.1)

        sender = threading.Thread(target=camera, daemon=True)
        sender.start()
        tester.publisher('/front/image').publish(
            Image(height=10, width=10, encoding='rgb8', step=30, data=b'\0' * 7))
        assert wait_until(lambda: any(
            s.level == DiagnosticStatus.WARN and 'bad inputs in the last' in s.message
            for s in _statuses(diagnostics, name)), 10.0), 'bad input reported'
        diagnostics.clear()
        assert wait_until(lambda: any(  # the window passed: back to OK while frames flow
            s.level == DiagnosticStatus.OK for s in _statuses(diagnostics, name)), 10.0)
        stop.set()
        sender.join()
        diagnostics.clear()
        assert wait_until(lambda: any(
            s.level == DiagnosticStatus.WARN and 'no image for over' in s.message
            for s in _statuses(diagnostics, name)), 10.0), 'silent camera reported'
        assert node.node.statistics.bad_inputs == 1
    finally:
        stop.set()
        tester.close()
        node.close()


def test_teardown_never_destroys_what_a_busy_worker_uses(
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(segmentation_node, 'WORKER_JOIN_TIMEOUT_S', 0.5)
    node = InProcessNode({'input_size': 65})
    tester = RosTester()
    inside, release = threading.Event(), threading.Event()
    try:
        labels = tester.collect('/segmentation/labels', Image)
        _up(tester, '/image')
        segmenter = node.node._segmenter  # noqa: SLF001
        segment_batch = segmenter.segment_batch

        def busy(*args, **kwargs):
            inside.set()
            release.wait(30.0)
            return segment_batch(*args, **kwargs)

        monkeypatch.setattr(segmenter, 'segment_batch', busy)
        tester.publisher('/image').publish(
            image_message(np.zeros((48, 64, 3), np.uint8), stamp_ns=5))
        assert inside.wait(30.0)
        assert tester.lifecycle.change('deactivate') is False
        assert 'did not stop within 0.5 s' in capfd.readouterr().err
        assert node.node._segmenter is segmenter  # noqa: SLF001 - the model is kept
        release.set()
        assert labels.wait_for(1, 30.0), 'the batch finished on live publishers'
        assert tester.lifecycle.change('deactivate') and tester.lifecycle.change('cleanup')
    finally:
        release.set()
        tester.close()
        node.close()


def test_lifecycle_publishers_are_released_through_the_lifecycle_api() -> None:
    with node_under_test({'input_size': 65}) as (node, tester):
        for _ in range(3):
            assert tester.lifecycle.change('configure') and tester.lifecycle.change('cleanup')
        assert tester.lifecycle.change('configure')
        managed = node.node._managed_entities  # noqa: SLF001 - rclpy's lifecycle registry
        publishers = node.node._cameras[0].publishers.values()  # noqa: SLF001
        assert len(managed) == len(publishers) and set(publishers) <= managed
