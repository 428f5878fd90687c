"""Autoware mode: segmentation/mask_rle as segmentation_pointcloud_fusion reads it.

Each mask is decoded with the port of Autoware's ``runLengthDecoder`` and compared with the
labels image of the same frame remapped onto Autoware's classes; the mode's configure errors
and its publisher's presence are checked on the node.
"""

from __future__ import annotations

from pathlib import Path
import time

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from deeplab_ros.core.interop.autoware import AUTOWARE_CLASSES, autoware_lookup, \
    parse_overrides
from deeplab_ros.core.labels import resolve_labels
from deeplab_ros.core.weights.pretrained import pretrained_checkpoint
from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key
from support.autoware import autoware_run_length_decoder
from support.ros import decoded, image_message, node_under_test, RosTester


MODEL = 'deeplabv3_mnedgetpu_cityscapes'
OVERRIDES = ['terrain=SIDEWALK', 'pole=TRAFFIC_SIGN']
AUTOWARE = {'weights': f'pretrained:{MODEL}', 'input_size': 257, 'autoware_mask': True,
            'autoware_overrides': OVERRIDES}


@pytest.fixture(scope='module')
def cityscapes_model() -> None:
    pretrained_checkpoint(MODEL)  # converted before configure, as `deeplab-ros-models fetch`


def _traffic_frames(shared: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(shared / 'data/video/traffic_frames.mp4'))
    frames = []
    for _ in range(count):
        ok, frame = capture.read()
        assert ok
        frames.append(np.ascontiguousarray(cv2.resize(frame, (320, 180))[..., ::-1]))
        for _ in range(4):  # frames a little apart
            capture.grab()
    capture.release()
    return frames


def _publishers(tester: RosTester, topic: str) -> int:
    return tester.node.count_publishers(topic)


def test_mask_rle_decodes_to_the_labels_in_autoware_s_classes(
        shared: Path, cityscapes_model: None) -> None:
    with node_under_test(AUTOWARE) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        masks = tester.collect('/segmentation/mask_rle', Image)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/image')
        assert wait_until(lambda: tester.node.count_subscribers('/segmentation/mask_rle'), 5)
        time.sleep(0.3)
        frames = _traffic_frames(shared, 3)
        sent = {}
        for index, frame in enumerate(frames):
            message = image_message(frame, frame_id='camera0_optical',
                                    stamp_ns=10**9 * (index + 1) + index)
            sent[header_key(message.header)] = frame
            tester.publisher('/image').publish(message)
            assert labels.wait_for(index + 1, 60.0) and masks.wait_for(index + 1, 30.0)
        table = autoware_lookup(resolve_labels('cityscapes'), parse_overrides(OVERRIDES))
        by_header = {header_key(message.header): message for message in labels.snapshot()}
        assert len(masks.snapshot()) == len(frames)
        for mask in masks.snapshot():
            key = header_key(mask.header)
            frame, label_image = sent[key], decoded(by_header[key])
            assert mask.header.frame_id == 'camera0_optical'
            assert (mask.height, mask.width) == frame.shape[:2]
            assert mask.encoding == 'mono8' and mask.step == mask.width
            assert mask.is_bigendian == 0
            assert len(mask.data) % 5 == 0
            autoware = autoware_run_length_decoder(bytes(mask.data), mask.height, mask.width)
            assert np.array_equal(autoware, table[label_image])
            present = {AUTOWARE_CLASSES[value] for value in np.unique(autoware)}
            assert {'ROAD', 'VEHICLE'} <= present, present


def test_the_default_node_has_no_mask_publisher_and_the_mode_is_read_at_configure(
        cityscapes_model: None) -> None:
    parameters = {'weights': f'pretrained:{MODEL}', 'input_size': 257}
    with node_under_test(parameters) as (node, tester):
        assert tester.lifecycle.change('configure')
        assert wait_until(lambda: _publishers(tester, '/segmentation/labels') == 1, 10)
        assert _publishers(tester, '/segmentation/mask_rle') == 0
        assert 'mask_rle' not in node.node._cameras[0].publishers  # noqa: SLF001
        # Accepted while configured, used from the next configure on.
        assert tester.set_parameters({'autoware_mask': True,
                                      'autoware_overrides': OVERRIDES})[0].successful
        time.sleep(0.5)
        assert _publishers(tester, '/segmentation/mask_rle') == 0
        assert tester.lifecycle.change('cleanup') and tester.lifecycle.change('configure')
        assert wait_until(lambda: _publishers(tester, '/segmentation/mask_rle') == 1, 10)
        refused = tester.set_parameters({'autoware_overrides': ['road=PAVEMENT']})[0]
        assert not refused.successful and "'PAVEMENT' is not an Autoware class" in \
            refused.reason


@pytest.mark.parametrize('parameters, expected', [
    ({'weights': 'pretrained:deeplabv3_mnv2_dm05_float', 'input_size': 129,
      'autoware_mask': True},
     "(parameter autoware_mask): The model's classes ('deeplabv3_mobilenetv2', 21 classes) "
     "have no mapping to Autoware's ontology; there is one for ade20k, ade20k32, cityscapes"),
    ({**AUTOWARE, 'autoware_overrides': ['trafic light=OBSTACLE']},
     "(parameter autoware_overrides): autoware_overrides: the model has no class "
     "'trafic light' (close matches: 'traffic light'"),
    ({'weights': f'pretrained:{MODEL}', 'input_size': 129,
      'autoware_overrides': ['trafic light=OBSTACLE']},
     "(parameter autoware_overrides): autoware_overrides: the model has no class "
     "'trafic light' (close matches: 'traffic light'"),
], ids=['voc_model', 'missing_class', 'missing_class_with_the_mode_off'])
def test_configure_fails_with_the_reason(parameters: dict, expected: str,
                                         cityscapes_model: None,
                                         capfd: pytest.CaptureFixture) -> None:
    with node_under_test(parameters) as (node, tester):
        capfd.readouterr()
        assert tester.lifecycle.change('configure') is False
        assert tester.lifecycle.state() == 'unconfigured'
        assert node.node._segmenter is None  # noqa: SLF001 - the model was released
        logged = capfd.readouterr().err  # the node's own log output (this process)
        failures = [line for line in logged.splitlines() if 'configure failed' in line]
        assert len(failures) == 1 and expected in failures[0], logged[-2000:]
        assert 'Traceback' not in logged
