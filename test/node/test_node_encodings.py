"""The same frame in different encodings gives the same labels through the live node."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from support.codec import encode_image
from support.ros import decoded, node_under_test


# encoding -> minimum agreement with the rgb8 labels (1.0 = identical)
LOSSLESS = ('rgb8', 'bgr8', 'rgba8', 'bgra8')
LOSSY = {'yuv422': 0.95, 'yuv422_yuy2': 0.95, 'bayer_rggb8': 0.95, 'bayer_bggr8': 0.95,
         'bayer_gbrg8': 0.95, 'bayer_grbg8': 0.95}


def test_encodings_give_matching_labels(shared: Path) -> None:
    rgb = cv2.imread(str(shared / 'data/photos/basketball1.png'))[..., ::-1]
    rgb = np.ascontiguousarray(cv2.resize(rgb, (320, 240)))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey_rgb = np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    # The VOC model: few classes and large regions, so label agreement measures the decoding.
    parameters = {'weights': 'pretrained:deeplabv3_mnv2_dm05_float', 'input_size': 257}
    with node_under_test(parameters) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/image')
        cases = [(encoding, rgb, 1.0) for encoding in LOSSLESS]
        cases += [(encoding, rgb, minimum) for encoding, minimum in LOSSY.items()]
        cases += [('mono8', grey_rgb, None), ('rgb8', grey_rgb, 1.0), ('mono16', grey_rgb, None)]
        results = {}
        for index, (encoding, source, _) in enumerate(cases):
            header = Header(frame_id=f'{encoding}_{index}')
            header.stamp.sec = index + 1
            message = encode_image(source, encoding, header,
                                   is_bigendian=int(encoding == 'mono16'),
                                   padding=8 if index % 2 else 0)
            tester.publisher('/image').publish(message)
            assert labels.wait_for(index + 1, 60.0), encoding
            output = labels.snapshot()[-1]
            assert output.header.frame_id == f'{encoding}_{index}'
            results[(encoding, index)] = decoded(output)
        reference = results[('rgb8', 0)]
        grey_reference = results[('rgb8', len(cases) - 2)]
        for (encoding, index), result in results.items():
            _, source, minimum = cases[index]
            assert result.shape == rgb.shape[:2]
            if minimum is None:  # mono: same labels as the grey picture sent as rgb8
                assert np.array_equal(result, grey_reference), encoding
            elif minimum == 1.0:
                expected = grey_reference if source is grey_rgb else reference
                assert np.array_equal(result, expected), encoding
            else:
                agreement = (result == reference).mean()
                assert agreement >= minimum, (encoding, agreement)
