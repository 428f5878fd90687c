"""Labelled clouds and per-object regions on the real RGB-D frames, against independent sums.

The label images come from a real segmenter (a named pretrained model) on the real colour
frames; every expected value is recomputed here from the pinhole model in camera.yaml, the
label image and OpenCV's connected components, without the code under test.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.spatial.geometry import (
    back_project, back_project_at, depth_in_metres, IntrinsicsError, labelled_points, pack_rgb,
    PinholeIntrinsics, resize_nearest, same_aspect)
from deeplab_ros.core.spatial.regions import (
    find_regions, MAX_IMAGE_REGIONS, NO_REGION, region_image, regions_3d)
from support.regions import check_region_image
from support.rgbd import FRAME_NUMBERS, rgbd_camera, rgbd_frame, RgbdCamera, unpack_rgb

MODEL = 'pretrained:deeplabv3_mnv2_dm05_float'
SAMPLES = 500


@pytest.fixture(scope='module')
def camera() -> RgbdCamera:
    return rgbd_camera()


@pytest.fixture(scope='module')
def intrinsics(camera: RgbdCamera) -> PinholeIntrinsics:
    return PinholeIntrinsics(fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy,
                             width=camera.width, height=camera.height)


@pytest.fixture(scope='module')
def segmented() -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{frame number: (depth mm, labels, confidence)} of every RGB-D frame."""
    segmenter = Segmenter.from_checkpoint(MODEL, device='cpu', input_size=257)
    try:
        frames = [rgbd_frame(number) for number in FRAME_NUMBERS]
        results = segmenter.segment_batch([frame.rgb for frame in frames], confidence=True)
        return {frame.number: (frame.depth_mm, result.labels, result.confidence)
                for frame, result in zip(frames, results)}
    finally:
        segmenter.close()


def _independent_point(u: int, v: int, depth_mm: int, camera: RgbdCamera) -> tuple:
    z = depth_mm / camera.depth_scale
    return (u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z


def test_cloud_points_are_the_pinhole_back_projection_of_sampled_pixels(
        segmented, camera: RgbdCamera, intrinsics: PinholeIntrinsics) -> None:
    rng = np.random.default_rng(14)
    palette = np.random.default_rng(0).integers(0, 256, (256, 3), dtype=np.uint8)
    for number, (depth_mm, labels, _) in segmented.items():
        cloud = labelled_points(back_project(depth_in_metres(depth_mm), intrinsics), labels,
                                palette)
        assert cloud.shape == depth_mm.shape == labels.shape
        rows = rng.integers(0, camera.height, SAMPLES)
        columns = rng.integers(0, camera.width, SAMPLES)
        with_depth = 0
        for v, u in zip(rows.tolist(), columns.tolist()):
            point = cloud[v, u]
            assert point['label'] == labels[v, u]
            assert tuple(unpack_rgb(np.float32(point['rgb']))) == tuple(palette[labels[v, u]])
            reading = int(depth_mm[v, u])
            if reading == 0:
                assert np.isnan(point['x']) and np.isnan(point['y']) and np.isnan(point['z'])
                continue
            with_depth += 1
            expected = _independent_point(u, v, reading, camera)
            assert (point['x'], point['y'], point['z']) == pytest.approx(expected, abs=1e-5)
        assert with_depth > SAMPLES // 2, number


def test_every_point_carries_the_label_of_its_pixel_and_holes_stay_nan(
        segmented, intrinsics: PinholeIntrinsics) -> None:
    palette = np.zeros((256, 3), np.uint8)
    for depth_mm, labels, _ in segmented.values():
        cloud = labelled_points(back_project(depth_in_metres(depth_mm), intrinsics), labels,
                                palette)
        assert np.array_equal(cloud['label'], labels)
        missing = depth_mm == 0
        assert 0.2 < missing.mean() < 0.4  # the frames hold 27-32 % holes
        assert np.isnan(cloud['z'][missing]).all() and not np.isnan(cloud['z'][~missing]).any()


def test_dense_cloud_has_one_point_per_pixel_with_depth_of_the_kept_classes(
        segmented, camera: RgbdCamera, intrinsics: PinholeIntrinsics) -> None:
    palette = np.zeros((256, 3), np.uint8)
    depth_mm, labels, _ = segmented[1]
    points = back_project(depth_in_metres(depth_mm), intrinsics)
    present = np.unique(labels)
    keep = [int(present[-1])]
    for stride in (1, 3):
        dense = labelled_points(points, labels, palette, stride=stride, dense=True,
                                keep_classes=keep)
        rows, columns = np.nonzero((depth_mm[::stride, ::stride] > 0)
                                   & np.isin(labels[::stride, ::stride], keep))
        assert len(dense) == len(rows) > 0
        expected = np.array([_independent_point(int(c) * stride, int(r) * stride,
                                                int(depth_mm[r * stride, c * stride]), camera)
                             for r, c in zip(rows, columns)])
        actual = np.stack([dense['x'], dense['y'], dense['z']], axis=1)
        assert np.allclose(actual, expected, atol=1e-5)
        assert set(dense['label'].tolist()) == set(keep)
        organised = labelled_points(points, labels, palette, stride=stride, keep_classes=keep)
        assert organised.shape == labels[::stride, ::stride].shape
        assert int((~np.isnan(organised['z'])).sum()) == len(dense)


def test_depth_in_metres_reads_millimetres_and_metres_and_marks_holes() -> None:
    millimetres = np.array([[0, 1500], [65535, 250]], np.uint16)
    assert np.allclose(depth_in_metres(millimetres), [[np.nan, 1.5], [65.535, 0.25]],
                       equal_nan=True)
    metres = np.array([[np.nan, 1.5], [np.inf, -1.0]], np.float32)
    assert np.allclose(depth_in_metres(metres), [[np.nan, 1.5], [np.nan, np.nan]],
                       equal_nan=True)


def test_intrinsics_scale_with_the_image_and_reject_zero_focal_length(
        intrinsics: PinholeIntrinsics) -> None:
    half = intrinsics.scaled(320, 240)
    assert (half.fx, half.fy, half.cx, half.cy) == pytest.approx(
        (intrinsics.fx / 2, intrinsics.fy / 2, intrinsics.cx / 2, intrinsics.cy / 2))
    with pytest.raises(IntrinsicsError, match='focal'):
        PinholeIntrinsics.from_matrix([0.0] * 9, 640, 480)
    assert same_aspect((480, 640), (240, 320)) and same_aspect((480, 640), (241, 321))
    assert not same_aspect((480, 640), (480, 480))


def test_a_half_resolution_depth_image_gives_the_same_points_at_its_pixels(
        segmented, intrinsics: PinholeIntrinsics) -> None:
    depth_mm, labels, _ = segmented[2]
    small = cv2.resize(depth_mm, (320, 240), interpolation=cv2.INTER_NEAREST)
    points = back_project(depth_in_metres(small), intrinsics.scaled(320, 240))
    full = back_project(depth_in_metres(depth_mm), intrinsics)
    # With K scaled by 1/2 (ROS's convention), pixel (u, v) of the half image has the ray
    # ((2u - cx) / fx, (2v - cy) / fy) of the full camera.
    z = points[..., 2]
    ok = ~np.isnan(z)
    u = np.arange(320)[None, :].repeat(240, 0)
    v = np.arange(240)[:, None].repeat(320, 1)
    assert np.allclose(points[..., 0][ok] / z[ok],
                       ((2 * u[ok]) - intrinsics.cx) / intrinsics.fx, atol=1e-5)
    assert np.allclose(points[..., 1][ok] / z[ok],
                       ((2 * v[ok]) - intrinsics.cy) / intrinsics.fy, atol=1e-5)
    assert np.array_equal(np.isnan(z), np.isnan(full[::2, ::2, 2]))
    small_labels = resize_nearest(labels, (240, 320))
    assert np.array_equal(small_labels, cv2.resize(labels, (320, 240),
                                                   interpolation=cv2.INTER_NEAREST_EXACT))


def test_rgb_packing_round_trips() -> None:
    colours = np.array([[0, 0, 0], [255, 255, 255], [12, 200, 7]], np.uint8)
    packed = pack_rgb(colours)
    assert packed.dtype == np.float32
    assert packed.view(np.uint32).tolist() == [0, 0xFFFFFF, (12 << 16) | (200 << 8) | 7]
    assert np.array_equal(unpack_rgb(packed), colours)


@pytest.mark.parametrize('min_fraction', [0.0, 0.002])
def test_region_boxes_areas_counts_and_scores_match_the_label_image(
        segmented, min_fraction: float) -> None:
    for depth_mm, labels, confidence in segmented.values():
        found = find_regions(labels, confidence, min_area_fraction=min_fraction, ignore=(0,))
        min_area = max(1, int(np.ceil(min_fraction * labels.size)))
        expected_count = 0
        for class_id in np.unique(labels).tolist():
            if class_id == 0:
                continue
            count, components = cv2.connectedComponents((labels == class_id).astype(np.uint8),
                                                        connectivity=8)
            sizes = np.bincount(components.reshape(-1), minlength=count)[1:]
            expected_count += int((sizes >= min_area).sum())
        assert len(found.regions) == expected_count
        assert all(region.class_id != 0 for region in found.regions)
        for index, region in enumerate(found.regions):
            mask = found.ids == index
            rows, columns = np.nonzero(mask)
            assert region.area == len(rows) >= min_area
            assert (region.x, region.y) == (columns.min(), rows.min())
            assert (region.x + region.width - 1, region.y + region.height - 1) == \
                (columns.max(), rows.max())
            assert region.center == pytest.approx(
                ((columns.min() + columns.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2))
            assert (labels[mask] == region.class_id).all()
            assert region.score == pytest.approx(confidence[mask].mean() / 255.0, abs=1e-9)
            # one connected piece: OpenCV finds a single component in the region's mask
            assert cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] == 2
        unassigned = found.ids == NO_REGION
        assert (labels[unassigned] == 0).all() or min_fraction > 0


def test_region_image_numbers_each_region_s_connected_pixels_and_nothing_else(
        segmented) -> None:
    for _, labels, confidence in segmented.values():
        found = find_regions(labels, confidence, min_area_fraction=0.001, ignore=(0,))
        image = region_image(found)
        assert image.dtype == np.uint16 and image.shape == labels.shape
        assert len(found.regions) > 0
        check_region_image(image, labels, [
            (r.class_id, r.x, r.y, r.x + r.width, r.y + r.height) for r in found.regions],
            min_area=int(np.ceil(0.001 * labels.size)))
        areas = np.bincount(image.reshape(-1), minlength=len(found.regions) + 1)[1:]
        assert areas.tolist() == [region.area for region in found.regions]


def test_region_image_leaves_regions_past_the_16_bit_range_at_zero() -> None:
    # Isolated pixels of class 1 (every other row and column): 300 x 300 = 90 000 regions.
    labels = np.zeros((600, 600), np.uint8)
    labels[::2, ::2] = 1
    found = find_regions(labels, ignore=(0,))
    assert len(found.regions) == 90_000 > MAX_IMAGE_REGIONS
    image = region_image(found)
    assert image.dtype == np.uint16
    numbered = found.ids < MAX_IMAGE_REGIONS
    assert np.array_equal(image[numbered], (found.ids[numbered] + 1).astype(np.uint16))
    assert not image[~numbered].any()
    assert len(np.unique(image[labels == 1])) == MAX_IMAGE_REGIONS + 1  # 1..65535 and 0


def test_region_centroids_and_boxes_in_3d_agree_with_an_independent_computation(
        segmented, camera: RgbdCamera, intrinsics: PinholeIntrinsics) -> None:
    checked = 0
    for depth_mm, labels, confidence in segmented.values():
        found = find_regions(labels, confidence, min_area_fraction=0.001)
        located = regions_3d(found, back_project(depth_in_metres(depth_mm), intrinsics),
                             percentile=5.0)
        by_index = {item.index: item for item in located}
        for index, region in enumerate(found.regions):
            rows, columns = np.nonzero((found.ids == index) & (depth_mm > 0))
            if len(rows) == 0:
                assert index not in by_index
                continue
            z = depth_mm[rows, columns] / camera.depth_scale
            xyz = np.stack([(columns - camera.cx) * z / camera.fx,
                            (rows - camera.cy) * z / camera.fy, z], axis=1)
            item = by_index[index]
            assert item.points == len(rows)
            assert item.centroid == pytest.approx(tuple(xyz.mean(axis=0)), abs=1e-5)
            low, high = np.percentile(xyz, 5, axis=0), np.percentile(xyz, 95, axis=0)
            assert item.box_min == pytest.approx(tuple(low), abs=1e-5)
            assert item.box_max == pytest.approx(tuple(high), abs=1e-5)
            checked += 1
    assert checked >= 5


def test_regions_3d_with_a_depth_image_of_another_resolution(
        segmented, intrinsics: PinholeIntrinsics) -> None:
    depth_mm, labels, confidence = segmented[3]
    found = find_regions(labels, confidence, min_area_fraction=0.01)
    small = depth_mm[::2, ::2]
    points = back_project(depth_in_metres(small), intrinsics.scaled(320, 240))
    located = regions_3d(found, points, percentile=0.0)
    assert located
    ids = found.ids[1::2, 1::2]  # nearest-exact halving samples the odd pixels
    for item in located:
        member = (ids == item.index) & (small > 0)
        xyz = points[member]
        assert item.points == int(member.sum())
        assert item.centroid == pytest.approx(tuple(xyz.astype(np.float64).mean(axis=0)),
                                              abs=1e-5)
        assert item.box_min == pytest.approx(tuple(xyz.min(axis=0)), abs=1e-6)


def test_cloud_fields_class_id_and_probability_follow_their_points(
        segmented, intrinsics: PinholeIntrinsics) -> None:
    palette = np.random.default_rng(3).integers(0, 256, (256, 3), dtype=np.uint8)
    depth_mm, labels, confidence = segmented[2]
    points = back_project(depth_in_metres(depth_mm), intrinsics)
    lut = np.random.default_rng(4).integers(0, 16, 256, dtype=np.uint8)
    plain = labelled_points(points, labels, palette)
    cloud = labelled_points(points, labels, palette, class_id_lut=lut, confidence=confidence)
    assert cloud.dtype.names == ('x', 'y', 'z', 'rgb', 'label', 'class_id', 'probability')
    assert cloud.dtype.itemsize == 24 and plain.dtype.itemsize == 20
    for name in plain.dtype.names:
        assert np.array_equal(cloud[name], plain[name], equal_nan=True), name
    assert np.array_equal(cloud['class_id'], lut[labels])
    assert np.array_equal(cloud['probability'], confidence.astype(np.float32) / np.float32(255))
    raw = cloud.view(np.uint8).reshape(cloud.shape + (24,))
    assert not raw[..., 18:20].any()  # the rest of the label word stays zero
    only_class_id = labelled_points(points, labels, palette, class_id_lut=lut)
    assert only_class_id.dtype.itemsize == 20  # class_id fills the label word's padding
    assert np.array_equal(only_class_id['class_id'], lut[labels])
    keep = [int(np.bincount(labels.ravel()).argmax())]
    dense = labelled_points(points, labels, palette, dense=True, keep_classes=keep,
                            class_id_lut=lut, confidence=confidence, stride=2)
    chosen = (depth_mm[::2, ::2] > 0) & np.isin(labels[::2, ::2], keep)
    assert len(dense) == int(chosen.sum()) > 0
    assert np.array_equal(dense['class_id'], lut[labels[::2, ::2][chosen]])
    assert np.array_equal(dense['probability'],
                          confidence[::2, ::2][chosen].astype(np.float32) / np.float32(255))


def test_points_at_another_resolution_follow_each_pixel_s_own_ray(
        segmented, camera: RgbdCamera, intrinsics: PinholeIntrinsics) -> None:
    depth_mm = segmented[1][0]
    rng = np.random.default_rng(5)
    half = np.ascontiguousarray(depth_mm[::2, ::2])
    # Depth at half the mask's size: every mask pixel takes the depth pixel under it.
    points = back_project_at(depth_in_metres(half), intrinsics.scaled(320, 240), (480, 640))
    assert points.shape == (480, 640, 3)
    for v, u in zip(rng.integers(0, 480, SAMPLES), rng.integers(0, 640, SAMPLES)):
        reading = int(half[v // 2, u // 2])
        if reading == 0:
            assert np.isnan(points[v, u]).all()
            continue
        assert points[v, u] == pytest.approx(_independent_point(int(u), int(v), reading, camera),
                                             abs=1e-5)
    # A mask of half the depth's size: the depth pixel under each mask pixel's centre.
    small = back_project_at(depth_in_metres(depth_mm), intrinsics, (240, 320))
    assert small.shape == (240, 320, 3)
    half_camera = RgbdCamera(fx=camera.fx / 2, fy=camera.fy / 2, cx=camera.cx / 2,
                             cy=camera.cy / 2, width=320, height=240)
    for v, u in zip(rng.integers(0, 240, SAMPLES), rng.integers(0, 320, SAMPLES)):
        reading = int(depth_mm[2 * v + 1, 2 * u + 1])
        if reading:
            assert small[v, u] == pytest.approx(
                _independent_point(int(u), int(v), reading, half_camera), abs=1e-5)
    # At the depth's own size it is the plain back-projection.
    same = back_project_at(depth_in_metres(depth_mm), intrinsics, depth_mm.shape)
    assert np.array_equal(same, back_project(depth_in_metres(depth_mm), intrinsics),
                          equal_nan=True)


def test_the_node_s_cloud_at_either_resolution_with_class_ids_of_its_labels(
        segmented, intrinsics: PinholeIntrinsics) -> None:
    """``segmentation/points`` as the node builds it: ``points_resolution`` picks the grid,
    ``class_id`` without autoware_mask is the class id, the message's fields follow."""
    from deeplab_ros.ros.depth_input import FrameDepth  # noqa: PLC0415
    from deeplab_ros.ros.spatial_messages import point_cloud  # noqa: PLC0415
    from deeplab_ros.ros.spatial_outputs import labelled_cloud, SpatialSettings  # noqa: PLC0415
    from std_msgs.msg import Header  # noqa: PLC0415

    depth_mm, labels, confidence = segmented[3]
    half = np.ascontiguousarray(depth_mm[::2, ::2])
    depth = FrameDepth(metres=depth_in_metres(half), intrinsics=intrinsics.scaled(320, 240))
    depth_points = back_project(depth.metres, depth.intrinsics)
    palette = np.zeros((256, 3), np.uint8)
    for resolution, shape in (('depth', (240, 320)), ('mask', (480, 640))):
        settings = SpatialSettings(points_resolution=resolution, points_class_id=True,
                                   points_probability=True)
        cloud = labelled_cloud(labels, confidence, depth, depth_points, palette, settings)
        assert cloud.shape == shape
        assert np.array_equal(cloud['class_id'], cloud['label'])
        assert np.array_equal(cloud['label'], resize_nearest(labels, shape))
        message = point_cloud(Header(), cloud)
        assert (message.height, message.width, message.point_step) == (*shape, 24)
        assert [f.name for f in message.fields][-2:] == ['class_id', 'probability']
        assert bytes(message.data) == cloud.tobytes()
    plain = labelled_cloud(labels, confidence, depth, depth_points, palette, SpatialSettings())
    assert plain.dtype.names == ('x', 'y', 'z', 'rgb', 'label')
