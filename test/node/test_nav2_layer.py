"""Nav2's semantic_segmentation_layer on the live node fed the real RGB-D frames.

The node runs with ``config/nav2.yaml`` (the default ADE20K model); the layer's subscriber is
the port in :mod:`support.nav2_layer`, configured from the ``ade20k`` observation source of
``config/nav2_semantic_segmentation_layer.yaml``: the layer's QoS, its approximate-time
matching, its LabelInfo gating and refusals, and its buffering of each frame into costmap
tiles (every rule cites the layer's file and line there). TF is replaced by a fixed camera
mount. Expected point positions are recomputed here from the depth images and camera.yaml.
"""

from __future__ import annotations

from pathlib import Path
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
import yaml

from deeplab_ros.ros.spinning import wait_until
from support.codec import encode_depth
from support.nav2_layer import BufferedFrame, CameraMount, layer_sources, LayerPort, \
    SIZE_REFUSAL
from support.rgbd import FRAME_NUMBERS, rgbd_camera, rgbd_frame, RgbdCamera
from support.ros import image_message, node_under_test, RosTester

ROOT = Path(__file__).resolve().parents[2]
NAV2_PARAMETERS = yaml.safe_load((ROOT / 'config' / 'nav2.yaml').read_text())[
    '/**']['ros__parameters']
SOURCES = layer_sources(ROOT / 'config' / 'nav2_semantic_segmentation_layer.yaml')
FRAME_ID = 'rgbd_optical'


def _header_stamp(stamp_ns: int) -> Header:
    header = Header(frame_id=FRAME_ID)
    header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return header


def _camera_info(camera: RgbdCamera, stamp_ns: int) -> CameraInfo:
    return CameraInfo(header=_header_stamp(stamp_ns), width=camera.width, height=camera.height,
                      distortion_model='plumb_bob', d=[0.0] * 5,
                      k=[camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0])


@pytest.fixture(scope='module')
def nav2_node():
    """The node with config/nav2.yaml (a small network input) and the layer's subscriber."""
    parameters = {**NAV2_PARAMETERS, 'input_size': 257, 'device': 'cpu'}
    with node_under_test(parameters) as (node, tester):
        layer = LayerPort(tester.node, SOURCES['ade20k'])
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        for topic in ('/image', '/depth'):
            assert tester.wait_for_subscriber(topic)
        tester.publisher('/camera_info', CameraInfo)
        # The layer starts long before the first frame: its latched LabelInfo is in.
        assert wait_until(lambda: layer.label_info is not None, 30.0)
        assert wait_until(lambda: all(
            node.node.count_subscribers(topic) for topic in (
                '/segmentation/labels', '/segmentation/confidence', '/segmentation/points')),
            10.0)
        yield node, tester, layer


def _send(tester: RosTester, number: int, stamp_ns: int, camera: RgbdCamera,
          depth: np.ndarray | None = None) -> None:
    frame = rgbd_frame(number)
    tester.publisher('/camera_info', CameraInfo).publish(_camera_info(camera, stamp_ns))
    depth = frame.depth_mm if depth is None else depth
    tester.publisher('/depth').publish(encode_depth(depth, _header_stamp(stamp_ns)))
    time.sleep(0.1)
    tester.publisher('/image').publish(image_message(frame.rgb, frame_id=FRAME_ID,
                                                     stamp_ns=stamp_ns))


def _buffered(layer: LayerPort, stamp_ns: int, timeout: float = 60.0) -> BufferedFrame:
    def found() -> list[BufferedFrame]:
        with layer.lock:
            return [f for f in layer.buffered if f.stamp_ns == stamp_ns]
    assert wait_until(lambda: found() or layer.refusals or layer.contract, timeout), \
        f'no synchronised set for stamp {stamp_ns} ({layer.sets} sets so far)'
    assert not layer.refusals and not layer.contract, (layer.refusals, layer.contract)
    return found()[0]


def _independent_points(depth_mm: np.ndarray, camera: RgbdCamera,
                        size: tuple[int, int]) -> np.ndarray:
    """(height*width)x3 optical-frame points, one per pixel of a ``size`` mask: the depth
    pixel under the pixel's centre, along the pixel's own ray (camera.yaml's K at ``size``)."""
    height, width = size
    scale_y, scale_x = depth_mm.shape[0] / height, depth_mm.shape[1] / width
    rows, columns = np.indices(size)
    depth = depth_mm[((rows + 0.5) * scale_y).astype(int), ((columns + 0.5) * scale_x)
                     .astype(int)]
    fx, fy = camera.fx * width / camera.width, camera.fy * height / camera.height
    cx, cy = camera.cx * width / camera.width, camera.cy * height / camera.height
    z = np.where(depth > 0, depth / camera.depth_scale, np.nan)
    return np.stack([(columns - cx) * z / fx, (rows - cy) * z / fy, z], axis=-1).reshape(-1, 3)


def _check_tiles(frame: BufferedFrame, depth_mm: np.ndarray, camera: RgbdCamera,
                 layer: LayerPort) -> None:
    """Point i is pixel i: every kept observation's tile is that of the independent point of
    its pixel, and the points the layer considers are exactly the pixels with depth in
    range."""
    points = _independent_points(depth_mm, camera, frame.size)
    squared = (points ** 2).sum(axis=1)  # the mount's origin is the optical centre
    source = layer.source
    with np.errstate(invalid='ignore'):
        in_range = (squared < source.max_obstacle_distance ** 2) & \
            (squared > source.min_obstacle_distance ** 2)
    assert frame.considered == int(in_range.sum()) > 0
    base = CameraMount().to_base(points)
    tiles = np.array(list(frame.tiles), dtype=np.float64).reshape(-1, 2)
    pixels = np.array([pixel for pixel, _, _ in frame.tiles.values()], dtype=np.int64)
    low, size = tiles * layer.resolution, layer.resolution
    xy = base[pixels, :2]
    # Inside its tile, up to float32 rounding of the node's coordinates.
    assert ((xy > low - 1e-5) & (xy < low + size + 1e-5)).all()


def test_the_nav2_parameters_are_node_parameters_with_usable_values() -> None:
    """rclpy ignores an unknown name in a parameters file: each one is checked here."""
    from rclpy.parameter import Parameter  # noqa: PLC0415

    from deeplab_ros.ros.parameters import SPEC_BY_NAME, validate  # noqa: PLC0415

    for name, value in NAV2_PARAMETERS.items():
        assert name in SPEC_BY_NAME, name
        assert type(value) is type(SPEC_BY_NAME[name].default), name
        assert validate(Parameter(name, value=value)) == '', name
    assert NAV2_PARAMETERS['use_depth'] and NAV2_PARAMETERS['points_resolution'] == 'mask'


def test_every_configured_class_name_is_in_label_info(nav2_node) -> None:
    """The layer matches class names by exact string (buffer.cpp:107-122)."""
    _, _, layer = nav2_node
    names = {item.class_name for item in layer.label_info.class_map}
    configured = set(SOURCES['ade20k'].class_of_name())
    assert configured <= names, sorted(configured - names)
    ids = {item.class_id for item in layer.label_info.class_map
           if item.class_name in configured}
    assert set(layer.id_to_type) == ids


def test_the_layer_buffers_every_real_rgbd_frame_and_marks_floor_and_obstacles(
        nav2_node) -> None:
    _, tester, layer = nav2_node
    camera = rgbd_camera()
    types = {t.name: t for t in SOURCES['ade20k'].class_types}
    marked = {name: 0 for name in types}
    scores: list[int] = []
    sets_before = layer.sets
    for number in FRAME_NUMBERS:
        stamp = number * 1_000_000_000
        _send(tester, number, stamp, camera)
        frame = _buffered(layer, stamp)
        assert frame.size == (480, 640)
        _check_tiles(frame, rgbd_frame(number).depth_mm, camera, layer)
        for name, tiles in frame.marks.items():
            marked[name] += len(tiles)
        # One frame on a fresh tile map: one observation per tile, so base costs
        # (samples_to_max_cost is 3 for obstacles; layer.cpp:390-398).
        for name, costs in frame.costs.items():
            assert set(costs) <= {types[name].base_cost}, name
        scores.extend(score for _, _, score in frame.tiles.values())
    # Indoor frames: floor and furniture / walls within 5 m.
    assert marked['traversable'] > 0 and marked['obstacle'] > 0, marked
    # The confidence the layer uses is the node's, not its 255 default (layer.cpp:487-491).
    assert min(scores) < 255
    assert layer.sets - sets_before == len(FRAME_NUMBERS)


@pytest.mark.parametrize('number, scale', [(2, 0.5), (4, 2)], ids=['half', 'double'])
def test_depth_at_another_resolution_gives_one_point_per_mask_pixel(
        nav2_node, number: int, scale: float) -> None:
    """``points_resolution: mask``: a 640x480 cloud whatever the depth image's size."""
    _, tester, layer = nav2_node
    camera = rgbd_camera()
    depth = rgbd_frame(number).depth_mm
    depth = depth[::2, ::2] if scale < 1 else np.repeat(np.repeat(depth, 2, 0), 2, 1)
    depth = np.ascontiguousarray(depth)
    stamp = number * 10_000_000_000
    _send(tester, number, stamp, camera, depth=depth)
    frame = _buffered(layer, stamp)
    assert frame.size == (480, 640)
    _check_tiles(frame, depth, camera, layer)


def test_a_layer_started_after_the_node_gets_label_info_and_buffers_frames(nav2_node) -> None:
    """The usual order (the costmap comes up after the camera pipeline): the latched
    LabelInfo reaches a late subscriber with the layer's QoS (layer.cpp:202, 228-232), and
    its first frame is buffered, not dropped for want of LabelInfo (layer.cpp:482-486)."""
    _, tester, _ = nav2_node
    late = LayerPort(tester.node, SOURCES['ade20k'])
    try:
        assert wait_until(lambda: late.label_info is not None, 30.0)
        topics = ('/segmentation/labels', '/segmentation/confidence', '/segmentation/points')
        # Both layers subscribed (the fixture's and this one) before the frame is sent.
        assert wait_until(lambda: all(tester.node.count_subscribers(topic) >= 2
                                      for topic in topics), 10.0)
        stamp = 50_000_000_000
        _send(tester, 5, stamp, rgbd_camera())
        frame = _buffered(late, stamp)
        assert frame.size == (480, 640) and frame.considered > 0
    finally:
        late.close()


def test_a_cloud_at_the_depth_resolution_is_refused_by_the_layer(nav2_node) -> None:
    """The control: without ``points_resolution: mask``, half-resolution depth gives a
    320x240 cloud for a 640x480 mask, which the layer refuses (layer.cpp:464-472)."""
    _, tester, layer = nav2_node
    assert all(r.successful for r in tester.set_parameters({'points_resolution': 'depth'}))
    try:
        half = np.ascontiguousarray(rgbd_frame(3).depth_mm[::2, ::2])
        _send(tester, 3, 30_000_000_000, rgbd_camera(), depth=half)
        assert wait_until(lambda: layer.refusals, 60.0), layer.sets
        assert layer.refusals[0].startswith(SIZE_REFUSAL)
        assert 'segmentation->width:640' in layer.refusals[0]
        assert 'pointcloud->width:320' in layer.refusals[0]
    finally:
        assert all(r.successful for r in tester.set_parameters({'points_resolution': 'mask'}))
        with layer.lock:
            layer.refusals.clear()
