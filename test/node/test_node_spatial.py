"""The node's spatial outputs over real DDS: labelled cloud, 2D and 3D detections from the real
RGB-D frames, compressed input, and bad depth / camera_info input.

Expected values are computed here from what the node itself publishes on
segmentation/labels and segmentation/confidence (whatever the model), the depth images and the
pinhole model of camera.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo

from support.codec import cloud_array, encode_depth
from deeplab_ros.core.spatial.geometry import resize_nearest
from deeplab_ros.ros import segmentation_node
from deeplab_ros.ros.spinning import wait_until
from deeplab_ros.ros.stamps import header_key, stamp_from_ns
from support.rgbd import rgbd_camera, rgbd_frame, RgbdCamera, RgbdFrame, unpack_rgb
from support.ros import decoded, image_message, LATCHED, node_under_test, ROSOUT, RosTester


INPUT_SIZE = 257
SPATIAL = {'points': PointCloud2, 'detections': Detection2DArray,
           'detections_3d': Detection3DArray}


def _header(stamp_ns: int, frame_id: str = 'rgbd_optical') -> Header:
    return Header(frame_id=frame_id, stamp=stamp_from_ns(stamp_ns))


def camera_info_message(camera: RgbdCamera, header: Header, focal_scale: float = 1.0
                        ) -> CameraInfo:
    """CameraInfo of camera.yaml (``focal_scale`` 0 makes a broken one)."""
    fx, fy = camera.fx * focal_scale, camera.fy * focal_scale
    return CameraInfo(header=header, width=camera.width, height=camera.height,
                      distortion_model='plumb_bob', d=[0.0] * 5,
                      k=[fx, 0.0, camera.cx, 0.0, fy, camera.cy, 0.0, 0.0, 1.0],
                      r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[fx, 0.0, camera.cx, 0.0, 0.0, fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0])


@dataclass
class Outputs:
    """Collectors of everything the node publishes for a frame."""

    labels: object
    confidence: object
    spatial: dict

    def for_stamp(self, stamp_ns: int, timeout: float = 60.0) -> dict:
        """{output: message} of the frame stamped ``stamp_ns`` (waits for all of them)."""
        key = header_key(_header(stamp_ns))
        collectors = {'labels': self.labels, 'confidence': self.confidence, **self.spatial}

        def found() -> dict:
            return {name: message for name, collector in collectors.items()
                    for message in collector.snapshot() if header_key(message.header) == key}
        assert wait_until(lambda: len(found()) == len(collectors), timeout), \
            (sorted(found()), [(n, c.count()) for n, c in collectors.items()])
        return found()


@pytest.fixture(scope='module')
def camera() -> RgbdCamera:
    return rgbd_camera()


@pytest.fixture(scope='module')
def rgbd_node():
    with node_under_test({'input_size': INPUT_SIZE, 'use_depth': True,
                          'publish_confidence': True, 'depth_tolerance': 0.005}) as (node, tester):
        outputs = Outputs(
            labels=tester.collect('/segmentation/labels', Image),
            confidence=tester.collect('/segmentation/confidence', Image),
            spatial={name: tester.collect(f'/segmentation/{name}', kind)
                     for name, kind in SPATIAL.items()})
        label_info = tester.collect('/segmentation/label_info', LabelInfo, LATCHED)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        for topic in ('/image', '/depth'):
            assert tester.wait_for_subscriber(topic)
        tester.publisher('/camera_info', CameraInfo)
        assert wait_until(lambda: all(
            tester.node.count_subscribers(f'/segmentation/{name}') for name in SPATIAL), 10)
        assert label_info.wait_for(1)
        yield node, tester, outputs, label_info.snapshot()[-1]


def _send(tester: RosTester, frame: RgbdFrame, stamp_ns: int, camera: RgbdCamera, *,
          depth: np.ndarray | None = None, depth_stamp_ns: int | None = None,
          info: bool = True) -> None:
    """Publish camera_info, depth (first, as a driver may) and colour of one frame."""
    if info:
        tester.publisher('/camera_info', CameraInfo).publish(
            camera_info_message(camera, _header(stamp_ns)))
    depth = frame.depth_mm if depth is None else depth
    tester.publisher('/depth').publish(encode_depth(
        depth, _header(stamp_ns if depth_stamp_ns is None else depth_stamp_ns)))
    time.sleep(0.1)
    tester.publisher('/image').publish(image_message(frame.rgb, frame_id='rgbd_optical',
                                                     stamp_ns=stamp_ns))


def _independent_points(depth_mm: np.ndarray, camera: RgbdCamera, scale: float = 1.0
                        ) -> np.ndarray:
    """HxWx3 points from depth in mm and camera.yaml's K scaled by ``scale``."""
    rows, columns = np.indices(depth_mm.shape, dtype=np.float64)
    z = np.where(depth_mm > 0, depth_mm / camera.depth_scale, np.nan)
    return np.stack([(columns - camera.cx * scale) * z / (camera.fx * scale),
                     (rows - camera.cy * scale) * z / (camera.fy * scale), z], axis=-1)


def _ignored(label_info: LabelInfo) -> set[int]:
    """The default ``detections_ignore_classes``: class 0 (background / other), by its id."""
    ids = {c.class_id for c in label_info.class_map}
    assert 0 in ids, ids
    return {0}


def _components(labels: np.ndarray, ignored: set[int], min_area: int) -> list[tuple]:
    """(class, x, y, w, h, mask) of every 8-connected component of a class, from OpenCV."""
    found = []
    for class_id in np.unique(labels).tolist():
        if class_id in ignored:
            continue
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            (labels == class_id).astype(np.uint8), connectivity=8)
        for index in range(1, count):
            x, y, w, h, area = stats[index].tolist()
            if area >= min_area:
                found.append((class_id, x, y, w, h, components == index))
    return found


def test_cloud_and_detections_of_real_rgbd_frames(rgbd_node, camera: RgbdCamera) -> None:
    _, tester, outputs, label_info = rgbd_node
    frame = rgbd_frame(1)
    stamp = 1_000_000_000
    _send(tester, frame, stamp, camera)
    got = outputs.for_stamp(stamp)
    labels = decoded(got['labels'])
    confidence = decoded(got['confidence'])
    for name in ('points', 'detections', 'detections_3d'):
        assert header_key(got[name].header) == header_key(got['labels'].header)

    # Cloud: organised 640x480, fields and types, points = pinhole back-projection.
    message = got['points']
    assert (message.height, message.width) == (480, 640) and not message.is_dense
    assert [(f.name, f.offset, f.datatype) for f in message.fields] == [
        ('x', 0, 7), ('y', 4, 7), ('z', 8, 7), ('rgb', 12, 7), ('label', 16, 2)]
    cloud = cloud_array(message)
    assert np.array_equal(cloud['label'], labels)
    expected = _independent_points(frame.depth_mm, camera)
    missing = frame.depth_mm == 0
    assert np.isnan(cloud['z'][missing]).all() and np.isnan(cloud['x'][missing]).all()
    rng = np.random.default_rng(1)
    rows, columns = np.nonzero(~missing)
    sample = rng.choice(len(rows), 2000, replace=False)
    for axis, name in enumerate('xyz'):
        assert np.allclose(cloud[name][rows[sample], columns[sample]],
                           expected[rows[sample], columns[sample], axis], atol=1e-5)
    colours = unpack_rgb(cloud['rgb'])
    for class_id in np.unique(labels):
        assert len({tuple(c) for c in colours[labels == class_id]}) == 1

    # 2D detections: one per connected component above the area threshold, exact boxes,
    # class id as in label_info, score = mean published confidence, unique ids.
    min_area = int(np.ceil(0.001 * labels.size))
    components = _components(labels, _ignored(label_info), min_area)
    detections = got['detections'].detections
    assert len(detections) == len(components) > 0
    assert len({d.id for d in detections}) == len(detections)
    class_ids = {c.class_id for c in label_info.class_map}
    by_box = {}
    for detection in detections:
        hypothesis = detection.results[0].hypothesis
        assert int(hypothesis.class_id) in class_ids
        box = detection.bbox
        x = box.center.position.x - box.size_x / 2
        y = box.center.position.y - box.size_y / 2
        by_box[(int(hypothesis.class_id), round(x), round(y), round(box.size_x),
                round(box.size_y))] = detection
    for class_id, x, y, w, h, mask in components:
        detection = by_box[(class_id, x, y, w, h)]
        assert detection.results[0].hypothesis.score == pytest.approx(
            confidence[mask].mean() / 255.0, abs=1e-6)

    # 3D detections: the centroid of each region's points with depth, same ids as 2D.
    located = {d.id: d for d in got['detections_3d'].detections}
    assert located and set(located) <= {d.id for d in detections}
    for class_id, x, y, w, h, mask in components:
        detection = by_box[(class_id, x, y, w, h)]
        points = expected[mask & ~missing]
        if len(points) == 0:
            assert detection.id not in located
            continue
        item = located[detection.id]
        centroid = item.results[0].pose.pose.position
        assert (centroid.x, centroid.y, centroid.z) == pytest.approx(
            tuple(points.mean(axis=0)), abs=1e-4)
        low, high = np.percentile(points, 5, axis=0), np.percentile(points, 95, axis=0)
        center, size = item.bbox.center.position, item.bbox.size
        assert (center.x, center.y, center.z) == pytest.approx(tuple((low + high) / 2),
                                                               abs=1e-4)
        assert (size.x, size.y, size.z) == pytest.approx(tuple(high - low), abs=1e-4)
        assert item.results[0].hypothesis.class_id == str(class_id)


def test_dense_strided_cloud_of_some_classes_and_half_resolution_depth(
        rgbd_node, camera: RgbdCamera) -> None:
    node, tester, outputs, _ = rgbd_node
    frame = rgbd_frame(2)
    stamp = 2_000_000_000
    _send(tester, frame, stamp, camera)
    labels = decoded(outputs.for_stamp(stamp)['labels'])
    kept = int(np.bincount(labels.ravel()).argmax())
    results = tester.set_parameters({'points_dense': True, 'points_stride': 2,
                                     'points_classes': [str(kept)]})
    try:
        assert all(result.successful for result in results)
        stamp = 2_100_000_000
        _send(tester, frame, stamp, camera)
        got = outputs.for_stamp(stamp)
        assert np.array_equal(decoded(got['labels']), labels)
        cloud = cloud_array(got['points'])
        assert got['points'].height == 1 and got['points'].is_dense
        depth = frame.depth_mm[::2, ::2]
        keep = (depth > 0) & (labels[::2, ::2] == kept)
        assert len(cloud) == int(keep.sum()) > 0
        assert set(cloud['label'].tolist()) == {kept}
        expected = _independent_points(frame.depth_mm, camera)[::2, ::2][keep]
        assert np.allclose(np.stack([cloud['x'], cloud['y'], cloud['z']], 1), expected,
                           atol=1e-5)
    finally:
        tester.set_parameters({'points_dense': False, 'points_stride': 1,
                               'points_classes': ['']})

    # A 320x240 depth image: cloud at the depth resolution, labels resized, K scaled.
    half = np.ascontiguousarray(frame.depth_mm[::2, ::2])
    stamp = 2_200_000_000
    _send(tester, frame, stamp, camera, depth=half)
    cloud = cloud_array(outputs.for_stamp(stamp)['points'])
    assert cloud.shape == (240, 320)
    assert np.array_equal(cloud['label'], resize_nearest(labels, (240, 320)))
    expected = _independent_points(half, camera, scale=0.5)
    valid = half > 0
    assert np.allclose(cloud['z'][valid], expected[..., 2][valid], atol=1e-6)
    assert np.allclose(cloud['x'][valid], expected[..., 0][valid], atol=1e-5)
    assert np.isnan(cloud['z'][~valid]).all()
    assert node.node.statistics.depth_unmatched == 0


def test_frames_without_depth_in_tolerance_are_counted_and_still_segmented(
        rgbd_node, camera: RgbdCamera) -> None:
    node, tester, outputs, _ = rgbd_node
    frame = rgbd_frame(3)
    before = node.node.statistics.depth_unmatched
    stamp = 3_000_000_000
    _send(tester, frame, stamp, camera, depth_stamp_ns=stamp + 50_000_000)  # 50 ms off
    assert outputs.labels.wait_for(1) and wait_until(
        lambda: any(header_key(m.header) == header_key(_header(stamp))
                    for m in outputs.spatial['detections'].snapshot()), 60.0)
    assert wait_until(lambda: node.node.statistics.depth_unmatched == before + 1, 10.0)
    assert not any(header_key(m.header) == header_key(_header(stamp))
                   for m in outputs.spatial['points'].snapshot())


def _rosout_errors(log, fragment: str) -> list[str]:
    return [entry.msg for entry in log.snapshot() if fragment in entry.msg and entry.level >= 40]


def test_bad_depth_and_camera_info_are_counted_and_2d_outputs_flow(
        camera: RgbdCamera, monkeypatch: pytest.MonkeyPatch) -> None:
    # A throttle period longer than the test, so "the same problem again logs nothing new"
    # holds however long the cases before it took on a loaded host.
    monkeypatch.setattr(segmentation_node, 'ERROR_THROTTLE_SECONDS', 3600.0)
    with node_under_test({'input_size': 129, 'use_depth': True}, namespace='bad',
                         target='/bad/deeplab_segmentation') as (node, tester):
        labels = tester.collect('/bad/segmentation/labels', Image)
        detections = tester.collect('/bad/segmentation/detections', Detection2DArray)
        points = tester.collect('/bad/segmentation/points', PointCloud2)
        diagnostics = tester.collect('/diagnostics', DiagnosticArray)
        log = tester.collect('/rosout', Log, ROSOUT)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/bad/image')
        assert tester.wait_for_subscriber('/bad/depth')
        tester.publisher('/bad/camera_info', CameraInfo)
        assert wait_until(lambda: tester.node.count_subscribers('/bad/segmentation/points'), 10)
        stats = node.node.statistics
        frame = rgbd_frame(4)
        small = rgbd_frame(4)
        cases = [
            # (what, send kwargs, counter, log fragment)
            ('depth without camera_info', {'info': False}, 'bad_camera_info',
             'no camera_info'),
            ('zero focal length', {'focal_scale': 0.0}, 'bad_camera_info', 'focal length'),
            ('wrong encoding', {'encoding': 'rgb8'}, 'bad_depth', "depth encoding 'rgb8'"),
            ('wrong size', {'depth': np.zeros((300, 100), np.uint16)}, 'bad_depth',
             'registered depth image'),
            ('truncated depth', {'truncate': True}, 'bad_depth', 'needs step x height'),
        ]
        for index, (what, options, counter, fragment) in enumerate(cases):
            stamp = (index + 1) * 1_000_000_000
            header = _header(stamp)
            if options.get('info', True):
                tester.publisher('/bad/camera_info', CameraInfo).publish(camera_info_message(
                    camera, header, options.get('focal_scale', 1.0)))
            depth = encode_depth(options.get('depth', small.depth_mm), header)
            if 'encoding' in options:
                depth.encoding = options['encoding']
            if options.get('truncate'):
                depth.data = depth.data[: len(depth.data) // 3]
            before = getattr(stats, counter)
            tester.publisher('/bad/depth').publish(depth)
            time.sleep(0.1)
            tester.publisher('/bad/image').publish(
                image_message(frame.rgb, frame_id='rgbd_optical', stamp_ns=stamp))
            key = header_key(header)
            assert wait_until(lambda: any(header_key(m.header) == key
                                          for m in labels.snapshot()), 60.0), what
            assert wait_until(lambda: any(header_key(m.header) == key
                                          for m in detections.snapshot()), 10.0), what
            assert wait_until(lambda: getattr(stats, counter) == before + 1, 10.0), what
            assert wait_until(lambda: _rosout_errors(log, fragment), 10.0), (
                what, [entry.msg for entry in log.snapshot()][-5:])
            assert not any(header_key(m.header) == key for m in points.snapshot()), what
        assert (stats.bad_depth, stats.bad_camera_info) == (3, 2)
        # The same problem again within the throttle period logs nothing new.
        errors = len(_rosout_errors(log, 'registered depth image'))
        tester.publisher('/bad/depth').publish(
            encode_depth(np.zeros((300, 100), np.uint16), _header(9_000_000_000)))
        tester.publisher('/bad/image').publish(
            image_message(frame.rgb, frame_id='rgbd_optical', stamp_ns=9_000_000_000))
        assert wait_until(lambda: stats.bad_depth == 4, 60.0)
        time.sleep(0.5)
        assert len(_rosout_errors(log, 'registered depth image')) == errors
        # A good frame afterwards gives its cloud; diagnostics report the counters.
        tester.publisher('/bad/camera_info', CameraInfo).publish(
            camera_info_message(camera, _header(10_000_000_000)))
        tester.publisher('/bad/depth').publish(
            encode_depth(frame.depth_mm, _header(10_000_000_000)))
        time.sleep(0.1)
        tester.publisher('/bad/image').publish(
            image_message(frame.rgb, frame_id='rgbd_optical', stamp_ns=10_000_000_000))
        assert points.wait_for(1, 60.0)
        assert wait_until(lambda: _diagnostic(diagnostics, 'bad_depth') == '4', 10.0)
        assert _diagnostic(diagnostics, 'bad_camera_info') == '2'


def _diagnostic(collector, key: str) -> str | None:
    for array in reversed(collector.snapshot()):
        for status in array.status:
            for item in status.values:
                if item.key == key:
                    return item.value
    return None


def test_compressed_input_jpeg_and_png_and_a_truncated_jpeg(camera: RgbdCamera) -> None:
    with node_under_test({'input_size': 129, 'input_transport': 'compressed'},
                         namespace='jpeg', target='/jpeg/deeplab_segmentation') as (node, tester):
        labels = tester.collect('/jpeg/segmentation/labels', Image)
        log = tester.collect('/rosout', Log, ROSOUT)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        publisher = tester.publisher('/jpeg/image/compressed', CompressedImage)
        assert wait_until(lambda: publisher.get_subscription_count() > 0, 10.0)
        rgb = cv2.resize(rgbd_frame(5).rgb, (320, 240), interpolation=cv2.INTER_AREA)
        stats = node.node.statistics
        ok, jpeg = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        ok, png = cv2.imencode('.png', rgb[:200, :300, ::-1])
        assert ok
        sent = [('jpeg', jpeg.tobytes(), (240, 320)), ('png', png.tobytes(), (200, 300))]
        for index, (image_format, data, size) in enumerate(sent):
            header = _header((index + 1) * 1_000_000_000, frame_id=f'jpeg_camera_{index}')
            publisher.publish(CompressedImage(header=header, format=image_format, data=data))
            assert wait_until(lambda: any(header_key(m.header) == header_key(header)
                                          for m in labels.snapshot()), 60.0), image_format
            message = next(m for m in labels.snapshot()
                           if header_key(m.header) == header_key(header))
            assert (message.height, message.width) == size
            assert (message.header.frame_id, message.header.stamp.sec) == \
                (f'jpeg_camera_{index}', index + 1)
        before = stats.bad_inputs
        truncated = jpeg.tobytes()[: len(jpeg) // 2]
        publisher.publish(CompressedImage(header=_header(5_000_000_000), format='jpeg',
                                          data=truncated))
        assert wait_until(lambda: stats.bad_inputs == before + 1, 30.0)
        assert wait_until(lambda: _rosout_errors(log, 'bad compressed image on '
                                                      '/jpeg/image/compressed'), 10.0)
        # The node carries on with the next good frame.
        publisher.publish(CompressedImage(header=_header(6_000_000_000), format='jpeg',
                                          data=jpeg.tobytes()))
        assert wait_until(lambda: labels.snapshot()[-1].header.stamp.sec == 6, 60.0)
        assert wait_until(lambda: stats.processed == 3, 10.0)
