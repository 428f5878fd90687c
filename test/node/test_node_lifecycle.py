"""The node's lifecycle, driven over its real services from a second node, and its parameters.

What is (not) published is checked on the topics, not in the log.
"""

from __future__ import annotations

from pathlib import Path
import time

import cv2
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, LabelInfo

from deeplab_ros.core.labels import voc_labels
from deeplab_ros.ros.spinning import wait_until

from support.ros import decoded, image_message, InProcessNode, LATCHED, RosTester, ROSOUT

QUIET = 1.0  # seconds to wait before concluding nothing was published


@pytest.fixture(scope='module')
def frame(shared: Path) -> np.ndarray:
    image = cv2.imread(str(shared / 'data/photos/pets.jpg'))[..., ::-1]
    return np.ascontiguousarray(cv2.resize(image, (256, 215)))


@pytest.fixture()
def harness(request: pytest.FixtureRequest):
    parameters = getattr(request, 'param', {})
    node = InProcessNode({'weights': 'pretrained:deeplabv3_mnv2_dm05_float', 'input_size': 257,
                          **parameters})
    tester = RosTester()
    yield node, tester
    tester.close()
    node.close()


def _graph_counts(tester: RosTester) -> tuple[int, int]:
    return (tester.node.count_publishers('/segmentation/labels'),
            tester.node.count_subscribers('/image'))


def test_every_transition_over_the_lifecycle_services(harness, frame: np.ndarray) -> None:
    node, tester = harness
    labels = tester.collect('/segmentation/labels', Image)
    label_info = tester.collect('/segmentation/label_info', LabelInfo, LATCHED)
    publisher = tester.publisher('/image')
    life = tester.lifecycle

    def publish_and_count(seconds: float = QUIET) -> int:
        before = labels.count()
        publisher.publish(image_message(frame, stamp_ns=time.time_ns()))
        time.sleep(seconds)
        return labels.count() - before

    assert life.state() == 'unconfigured'
    assert _graph_counts(tester) == (0, 0)
    assert publish_and_count() == 0

    assert life.change('configure') and life.state() == 'inactive'
    assert wait_until(lambda: _graph_counts(tester)[0] == 1, 5.0)
    assert _graph_counts(tester)[1] == 0, 'an inactive node must not subscribe'
    assert publish_and_count() == 0

    assert life.change('activate') and life.state() == 'active'
    assert tester.wait_for_subscriber('/image')
    assert label_info.wait_for(1, 10.0), 'label info is published on activation'
    publisher.publish(image_message(frame, stamp_ns=123))
    assert labels.wait_for(1, 30.0)

    assert life.change('deactivate') and life.state() == 'inactive'
    assert wait_until(lambda: _graph_counts(tester)[1] == 0, 5.0)
    assert publish_and_count() == 0

    assert life.change('activate') and life.state() == 'active'
    assert tester.wait_for_subscriber('/image')
    before = labels.count()
    publisher.publish(image_message(frame, stamp_ns=456))
    assert labels.wait_for(before + 1, 30.0)

    assert life.change('deactivate') and life.change('cleanup')
    assert life.state() == 'unconfigured'
    assert wait_until(lambda: _graph_counts(tester) == (0, 0), 5.0), \
        'cleanup leaves no publisher or subscription behind'
    assert publish_and_count() == 0

    assert life.change('configure') and life.state() == 'inactive'
    assert life.change('shutdown') and life.state() == 'finalized'
    assert wait_until(lambda: _graph_counts(tester) == (0, 0), 5.0)


def test_shutdown_from_active(harness, frame: np.ndarray) -> None:
    _, tester = harness
    assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
    assert tester.lifecycle.change('shutdown') and tester.lifecycle.state() == 'finalized'


@pytest.mark.parametrize('harness', [{'weights': '/nonexistent/weights.pt'}], indirect=True)
def test_bad_weights_fail_configure_with_the_cause_then_fixing_works(harness) -> None:
    _, tester = harness
    log = tester.collect('/rosout', Log, ROSOUT)
    assert tester.lifecycle.change('configure') is False
    assert tester.lifecycle.state() == 'unconfigured'
    assert wait_until(lambda: any('/nonexistent/weights.pt' in entry.msg and
                                  'not found' in entry.msg for entry in log.snapshot()), 10.0)
    results = tester.set_parameters({'weights': 'pretrained'})
    assert results[0].successful
    assert tester.lifecycle.change('configure') and tester.lifecycle.state() == 'inactive'


@pytest.mark.parametrize('harness', [{'device': 'cuda'}], indirect=True)
def test_missing_cuda_fails_configure_with_the_reason(harness) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    _, tester = harness
    log = tester.collect('/rosout', Log, ROSOUT)
    assert tester.lifecycle.change('configure') is False
    assert wait_until(lambda: any('CUDA is not available' in e.msg for e in log.snapshot()), 10)
    assert tester.set_parameters({'device': 'auto'})[0].successful
    assert tester.lifecycle.change('configure')


@pytest.mark.parametrize('harness, expected', [
    ({'labels': '/nonexistent/classes.yaml'}, 'Label file not found: /nonexistent/classes.yaml'),
    ({'device': 'gpu7'}, "(parameter device): Unknown device 'gpu7'"),
    ({'input_size': 5}, '(parameter input_size): input_size must be at least 17, got 5'),
    ({'upsample': 'bicubic'}, '(parameter upsample): upsample must be one of'),
    ({'backend': 'tensorrt'}, "(parameter backend): Unknown backend 'tensorrt'"),
    ({'input_transport': 'h264'}, '(parameter input_transport): input_transport must be one'),
    ({'cameras': ['front', 'front']}, '(parameter cameras): cameras must not repeat a name'),
], indirect=['harness'], ids=['labels', 'device', 'input_size', 'upsample', 'backend',
                              'input_transport', 'cameras'])
def test_each_kind_of_bad_configuration_fails_configure_with_its_message(
        harness, expected: str, capfd: pytest.CaptureFixture) -> None:
    """Values from a parameters file or the command line (never validated on set) are
    checked at configure by the same rules as ``ros2 param set``."""
    _, tester = harness
    assert tester.lifecycle.change('configure') is False
    assert tester.lifecycle.state() == 'unconfigured'
    logged = capfd.readouterr().err  # the node's own log output (this process)
    failures = [line for line in logged.splitlines() if 'configure failed' in line]
    assert len(failures) == 1 and expected in failures[0], logged[-2000:]
    assert 'Traceback' not in logged


def test_runtime_parameters_are_validated_and_applied(harness, frame: np.ndarray) -> None:
    _, tester = harness
    classes = tester.collect('/segmentation/classes', Classification)
    overlays = tester.collect('/segmentation/overlay', Image)
    assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
    assert tester.wait_for_subscriber('/image')
    publisher = tester.publisher('/image')

    rejected = tester.set_parameters({'overlay_alpha': 2.0})[0]
    assert not rejected.successful and rejected.reason
    rejected = tester.set_parameters({'device': 'gpu7'})[0]
    assert not rejected.successful and 'device' in rejected.reason
    rejected = tester.set_parameters({'cameras': ['a', 'a']})[0]
    assert not rejected.successful and 'repeat' in rejected.reason

    def one_frame() -> tuple[Classification, np.ndarray]:
        before_classes, before_overlays = classes.count(), overlays.count()
        publisher.publish(image_message(frame, stamp_ns=time.time_ns()))
        assert classes.wait_for(before_classes + 1) and overlays.wait_for(before_overlays + 1)
        return classes.snapshot()[-1], decoded(overlays.snapshot()[-1])

    assert overlays.wait_for(0)
    assert wait_until(lambda: tester.node.count_subscribers('/segmentation/overlay') > 0, 5)
    first, _ = one_frame()
    voc_names = voc_labels().class_names
    names = {voc_names[int(result.class_id)] for result in first.results}
    assert 'dog' in names and 'background' in names

    assert tester.set_parameters({'presence_min_fraction': 0.5,
                                  'overlay_alpha': 0.0})[0].successful
    second, overlay = one_frame()
    assert [result.class_id for result in second.results] == ['0']  # background
    assert all(result.score >= 0.5 for result in second.results)
    assert np.array_equal(overlay, frame), 'alpha 0 shows the frame unchanged'
