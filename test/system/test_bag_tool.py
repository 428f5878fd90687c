"""The bag tool: making bags from real footage, reading them back, playing and recording over
real DDS, and the command line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from deeplab_ros.bagtools.info import iter_records, read_bag_info, read_messages
from deeplab_ros.bagtools.sources import open_frame_source, pinhole_intrinsics
from deeplab_ros.ros.image_codec import decode_image_msg
from deeplab_ros.ros.spinning import SpunNode, wait_until
from deeplab_ros.ros.stamps import stamp_ns
from deeplab_ros.tools import bag as bag_cli

from support.bags import make_bag
from support.bags import PEDESTRIAN_VIDEO, start_bag_cli, stop_process, TRAFFIC_VIDEO
from support.bags import video_path

SMALL = (192, 108)  # 960x540 footage scaled by 1/5: real content, tiny messages


def _decoded_frames(video: str, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Frames decoded independently of the bag tool (OpenCV, INTER_AREA, RGB)."""
    capture = cv2.VideoCapture(str(video_path(video)))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        assert ok, f'{video} has fewer than {count} frames'
        frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.mark.parametrize('storage, version', [('mcap', 9), ('sqlite3', 8), ('mcap', 8),
                                              ('sqlite3', 9)])
def test_made_bag_reads_back_with_rclpy(tmp_path: Path, storage: str, version: int) -> None:
    written = make_bag(tmp_path / 'bag', TRAFFIC_VIDEO, max_frames=4, resize=SMALL, rate=5.0,
                       storage=storage, version=version)
    info = read_bag_info(written.path)
    assert (info.version, info.storage) == (version, storage)
    assert info.topic('/camera/image_raw').message_count == 4
    assert info.topic('/camera/camera_info').message_count == 4
    assert info.topic('/camera/image_raw').msgtype == 'sensor_msgs/msg/Image'
    assert abs(info.duration_ns - 600_000_000) <= 1  # 4 frames at 5 fps (mcap: end + 1 ns)

    images = read_messages(written.path, '/camera/image_raw')
    infos = read_messages(written.path, '/camera/camera_info')
    expected = _decoded_frames(TRAFFIC_VIDEO, 4, SMALL)
    first_ns = 1_700_000_000_250_000_000  # FIXED_START_TIME, exactly
    for index, ((stamp, image), (_, camera)) in enumerate(zip(images, infos)):
        assert stamp == first_ns + index * 200_000_000
        assert stamp_ns(image.header) == stamp
        assert image.header == camera.header
        assert image.header.frame_id == 'test_camera'
        assert (image.width, image.height, image.encoding, image.step) == (192, 108, 'rgb8',
                                                                           192 * 3)
        pixels = np.frombuffer(image.data, np.uint8).reshape(108, 192, 3)
        np.testing.assert_array_equal(pixels, expected[index])
        assert (camera.width, camera.height, camera.distortion_model) == (192, 108,
                                                                          'plumb_bob')
        np.testing.assert_allclose(camera.k, pinhole_intrinsics(192, 108))
        assert camera.k[0] == pytest.approx(192 / 2 / np.tan(np.radians(30)))
        assert camera.p[3] == 0.0 and camera.p[0] == camera.k[0]


@pytest.mark.ros
def test_type_hashes_match_the_ros_interfaces(tmp_path: Path) -> None:
    """The connection hashes are the ones rclpy's middleware reports for these types."""
    written = make_bag(tmp_path / 'bag', TRAFFIC_VIDEO, max_frames=1, resize=SMALL)
    info = read_bag_info(written.path)
    with SpunNode('hash_probe') as ros:
        image_pub = ros.node.create_publisher(Image, 'probe_image', 1)
        info_pub = ros.node.create_publisher(CameraInfo, 'probe_info', 1)
        endpoints = {
            name: ros.node.get_publishers_info_by_topic(name)[0].topic_type_hash
            for name in ('/probe_image', '/probe_info')}
        ros.node.destroy_publisher(image_pub)
        ros.node.destroy_publisher(info_pub)
    assert info.topic('/camera/image_raw').type_hash == str(endpoints['/probe_image'])
    assert info.topic('/camera/camera_info').type_hash == str(endpoints['/probe_info'])


def test_bgr8_bag_from_image_folder(tmp_path: Path, shared: Path) -> None:
    folder = tmp_path / 'frames'
    folder.mkdir()
    originals = []
    for index, name in enumerate(('basketball1.png', 'basketball2.png')):
        bgr = cv2.imread(str(shared / 'data' / 'photos' / name), cv2.IMREAD_COLOR)
        bgr = cv2.resize(bgr, (160, 120), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f'{index:03d}.png'), bgr)
        originals.append(bgr)
    source = open_frame_source(folder)
    assert (source.kind, source.frame_count, source.native_rate) == ('folder', 2, None)
    assert bag_cli.main(['make', str(folder), '-o', str(tmp_path / 'bag'), '--encoding',
                         'bgr8', '--camera-info-topic', '', '--frame-id', 'cam',
                         '--start-time', '100']) == 0
    info = read_bag_info(tmp_path / 'bag')
    assert [t.name for t in info.topics] == ['/camera/image_raw']
    images = read_messages(tmp_path / 'bag', '/camera/image_raw')
    assert [stamp_ns(m.header) for _, m in images] == [
        100 * 10**9, 100 * 10**9 + 100_000_000]  # no video rate: 10 fps
    for (_, image), bgr in zip(images, originals):
        assert image.encoding == 'bgr8' and image.header.frame_id == 'cam'
        np.testing.assert_array_equal(np.frombuffer(image.data, np.uint8).reshape(bgr.shape),
                                      bgr)


def test_cli_make_info_and_clear_errors(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / 'bag'
    video = str(video_path(TRAFFIC_VIDEO))
    assert bag_cli.main(['make', video, '-o', str(output), '--max-frames', '2', '--resize',
                         '96x54', '--storage', 'sqlite3', '--bag-version', '8']) == 0
    assert 'Wrote 2 frames (96x54, 30 fps)' in capsys.readouterr().out
    assert bag_cli.main(['info', str(output)]) == 0
    printed = capsys.readouterr().out
    assert 'Version:       8' in printed and 'sqlite3' in printed
    assert '/camera/image_raw' in printed and 'RIHS01_' in printed
    # A bare storage file (no metadata.yaml) reads too.
    assert read_bag_info(output / 'bag.db3').message_count == 4

    assert bag_cli.main(['make', video, '-o', str(output)]) == 2
    assert 'exists already' in capsys.readouterr().err
    assert bag_cli.main(['make', str(tmp_path / 'missing.mp4'), '-o',
                         str(tmp_path / 'b2')]) == 2
    assert 'No video or image folder' in capsys.readouterr().err
    assert bag_cli.main(['info', str(tmp_path / 'nothing')]) == 2
    assert 'No bag at' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bag_cli.main(['make', video, '-o', str(tmp_path / 'b3'), '--resize', '640'])
    assert 'WIDTHxHEIGHT' in capsys.readouterr().err


@pytest.mark.ros
def test_play_into_ros_and_record_round_trip(tmp_path: Path) -> None:
    """``play`` (own process, remapped) -> DDS -> in-process recorder -> identical frames."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: PLC0415
    from std_msgs.msg import String  # noqa: PLC0415

    from deeplab_ros.bagtools.recorder import BagRecorder  # noqa: PLC0415

    source = make_bag(tmp_path / 'source', TRAFFIC_VIDEO, max_frames=6, resize=SMALL,
                      rate=15.0, storage='sqlite3', version=8)
    recorded = tmp_path / 'recorded'
    with SpunNode('round_trip_recorder') as ros:
        latched_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
        latched = ros.node.create_publisher(String, '/rt/latched', latched_qos)
        latched.publish(String(data='published before the recorder started'))
        recorder = BagRecorder(ros.node, recorded, ['/rt/image', '/rt/camera_info',
                                                    '/rt/latched'])
        player = start_bag_cli('play', str(source.path), '--remap',
                               '/camera/image_raw:=/rt/image', '--remap',
                               '/camera/camera_info:=/rt/camera_info',
                               '--wait-for-subscribers', '20')
        try:
            assert wait_until(lambda: len(recorder.subscribed_topics) == 3, 20.0), \
                recorder.subscribed_topics
            assert wait_until(lambda: recorder.stats.counts.get('/rt/image', 0) >= 6
                              and recorder.stats.counts.get('/rt/camera_info', 0) >= 6, 30.0)
            output, _ = player.communicate(timeout=60.0)
            code = player.returncode
        finally:
            if player.poll() is None:
                stop_process(player)
        stats = recorder.close()
        ros.node.destroy_publisher(latched)
    assert code == 0, output
    assert 'Published 12 messages' in output
    assert stats.counts == {'/rt/image': 6, '/rt/camera_info': 6, '/rt/latched': 1}

    info = read_bag_info(recorded)
    assert (info.version, info.storage) == (9, 'mcap')
    original = read_bag_info(source.path)
    assert info.topic('/rt/image').type_hash == original.topic('/camera/image_raw').type_hash
    assert info.topic('/rt/latched').msgtype == 'std_msgs/msg/String'
    assert read_messages(recorded, '/rt/latched')[0][1].data == \
        'published before the recorder started'
    originals = read_messages(source.path, '/camera/image_raw')
    copies = read_messages(recorded, '/rt/image')
    assert [m.header for _, m in copies] == [m.header for _, m in originals]
    for (_, copy), (_, first) in zip(copies, originals):
        assert bytes(copy.data) == bytes(first.data)
    receive_ns = [t for t, _ in copies]
    print(f'recorded image gaps (ms, bag at 15 fps = 66.7 ms): '
          f'{[round((b - a) / 1e6, 1) for a, b in zip(receive_ns, receive_ns[1:])]}')


@pytest.mark.ros
def test_record_cli_stops_at_max_messages_on_sigint_and_after_duration(
        tmp_path: Path) -> None:
    source = make_bag(tmp_path / 'source', TRAFFIC_VIDEO, max_frames=5, resize=SMALL,
                      rate=20.0, camera_info_topic='')
    timed = start_bag_cli('record', '/nobody/publishes/this', '-o', str(tmp_path / 'timed'),
                          '--duration', '1.0')
    limited = start_bag_cli('record', '/camera/image_raw', '-o', str(tmp_path / 'limited'),
                            '--max-messages', '3', '--storage', 'sqlite3')
    open_ended = start_bag_cli('record', '/camera/image_raw', '-o', str(tmp_path / 'open'))
    try:
        player = start_bag_cli('play', str(source.path), '--wait-for-subscribers', '30',
                               '--subscribers', '2')
        player_output, _ = player.communicate(timeout=60.0)
        assert player.returncode == 0, player_output
        assert 'Published 5 messages' in player_output
        limited_output, _ = limited.communicate(timeout=30.0)
        assert limited.returncode == 0, limited_output
    finally:
        if limited.poll() is None:
            stop_process(limited)
        code, output = stop_process(open_ended)
    timed_output, _ = timed.communicate(timeout=60.0)
    assert timed.returncode == 0 and 'Recorded 0 messages' in timed_output, timed_output
    assert read_bag_info(tmp_path / 'timed').message_count == 0
    assert 'Recorded 3 messages' in limited_output
    assert code == 0, output
    assert 'Recorded 5 messages' in output
    assert read_bag_info(tmp_path / 'limited').topic('/camera/image_raw').message_count == 3
    assert read_bag_info(tmp_path / 'open').topic('/camera/image_raw').message_count == 5
    assert len(list(iter_records(tmp_path / 'open'))) == 5
    assert deserialize_message(next(iter_records(tmp_path / 'open')).data,
                               Image).width == SMALL[0]


def test_demo_input_bag_joins_both_videos_with_continuous_stamps(tmp_path: Path) -> None:
    from deeplab_ros.tools.demo import build_input_bag  # noqa: PLC0415

    frames = build_input_bag(tmp_path / 'demo_in', pedestrian_frames=3, traffic_frames=2,
                             rate=4.0, resize_width=128, pedestrian_first=5,
                             pedestrian_step=10)
    assert frames == 5
    images = read_messages(tmp_path / 'demo_in', '/camera/image_raw')
    assert [m.header.frame_id for _, m in images] == ['vtest'] * 3 + ['traffic_frames'] * 2
    assert [(m.width, m.height) for _, m in images] == [(128, 96)] * 3 + [(128, 72)] * 2
    stamps = [stamp_ns(m.header) for _, m in images]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [250_000_000] * 4
    assert len(read_messages(tmp_path / 'demo_in', '/camera/camera_info')) == 5
    capture = cv2.VideoCapture(str(video_path(PEDESTRIAN_VIDEO)))
    decoded = [capture.read()[1] for _ in range(16)]
    capture.release()
    for (_, image), index in zip(images, (5, 15)):  # frames 5, 15, 25 of vtest.avi
        expected = cv2.cvtColor(cv2.resize(decoded[index], (128, 96),
                                           interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(decode_image_msg(image), expected)
    assert not (tmp_path / '.demo_in_parts').exists()
