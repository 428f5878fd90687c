"""The optional fields of segmentation/points on the live node fed a real RGB-D frame.

``class_id`` and ``probability`` are read the way Autoware's label_based_euclidean_cluster
reads them (``label_based_euclidean_cluster.cpp``: ``has_field`` by name and datatype, then
``PointCloud2ConstIterator<std::uint8_t>(cloud, "class_id")`` and ``<float>(cloud,
"probability")``), through a reader built from the message's own field list. Expected values
come from the node's other outputs of the same frame: the labels, the confidence image and
the Autoware run-length mask (decoded with the port of Autoware's decoder).
"""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key
from support.autoware import autoware_run_length_decoder
from support.codec import encode_depth
from support.rgbd import rgbd_camera, rgbd_frame
from support.ros import decoded, image_message, node_under_test

PARAMETERS = {'input_size': 257, 'use_depth': True, 'autoware_mask': True,
              'points_class_id': True, 'points_probability': True,
              'points_resolution': 'mask'}
NUMPY_TYPES = {PointField.FLOAT32: '<f4', PointField.UINT8: 'u1'}


def _has_field(cloud: PointCloud2, name: str, datatype: int) -> bool:
    """label_based_euclidean_cluster's ``has_field``."""
    return any(f.name == name and f.datatype == datatype for f in cloud.fields)


def _fields(cloud: PointCloud2) -> np.ndarray:
    """Every field of every point, from the message's field list and point step."""
    dtype = np.dtype({'names': [f.name for f in cloud.fields],
                      'formats': [NUMPY_TYPES[f.datatype] for f in cloud.fields],
                      'offsets': [f.offset for f in cloud.fields],
                      'itemsize': cloud.point_step})
    return np.frombuffer(bytes(cloud.data), dtype=dtype).reshape(cloud.height, cloud.width)


def test_class_id_in_autoware_s_classes_and_probability_per_point() -> None:
    frame, camera = rgbd_frame(4), rgbd_camera()
    with node_under_test(PARAMETERS) as (node, tester):
        topics = {'labels': Image, 'confidence': Image, 'mask_rle': Image,
                  'points': PointCloud2}
        collected = {name: tester.collect(f'/segmentation/{name}', kind)
                     for name, kind in topics.items()}
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        for topic in ('/image', '/depth'):
            assert tester.wait_for_subscriber(topic)
        assert wait_until(lambda: all(node.node.count_subscribers(f'/segmentation/{name}')
                                      for name in topics), 10.0)

        def send(stamp_ns: int) -> dict:
            image = image_message(frame.rgb, frame_id='rgbd_optical', stamp_ns=stamp_ns)
            info = CameraInfo(header=image.header, width=camera.width, height=camera.height,
                              k=[camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy,
                                 0.0, 0.0, 1.0])
            tester.publisher('/camera_info', CameraInfo).publish(info)
            half = np.ascontiguousarray(frame.depth_mm[::2, ::2])  # 320x240 depth
            tester.publisher('/depth').publish(encode_depth(half, image.header))
            time.sleep(0.1)
            tester.publisher('/image').publish(image)
            key = header_key(image.header)

            def found() -> dict:
                return {name: message for name, collector in collected.items()
                        for message in collector.snapshot() if header_key(message.header) == key}
            assert wait_until(lambda: len(found()) == len(topics), 60.0), sorted(found())
            return found()

        got = send(1_000_000_000)
        cloud = got['points']
        assert _has_field(cloud, 'class_id', PointField.UINT8)
        assert _has_field(cloud, 'probability', PointField.FLOAT32)
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            ('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('rgb', 12, 7), ('label', 16, 2),
            ('class_id', 17, 2), ('probability', 20, 7)]
        assert (cloud.point_step, cloud.height, cloud.width) == (24, 480, 640)
        points = _fields(cloud)
        labels = decoded(got['labels'])
        assert np.array_equal(points['label'], labels)
        mask = got['mask_rle']
        autoware = autoware_run_length_decoder(bytes(mask.data), mask.height, mask.width)
        assert np.array_equal(points['class_id'], autoware)
        assert len(np.unique(autoware)) > 1  # several Autoware classes in the frame
        confidence = decoded(got['confidence'])
        assert np.array_equal(points['probability'],
                              confidence.astype(np.float32) / np.float32(255.0))
        assert 0.0 < points['probability'].min() and points['probability'].max() <= 1.0

        # Live: without the optional fields the cloud is back to 20-byte points.
        results = tester.set_parameters({'points_class_id': False,
                                         'points_probability': False})
        assert all(result.successful for result in results)
        plain = send(2_000_000_000)['points']
        assert [f.name for f in plain.fields] == ['x', 'y', 'z', 'rgb', 'label']
        assert plain.point_step == 20
        assert np.array_equal(_fields(plain)['label'], labels)
