"""Helpers for tests over recorded bags: test bags from the shared footage, rclpy sessions,
and the bag command line as its own process."""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path
import signal
import subprocess
import sys

from deeplab_ros.bagtools.writer import ImageBagSpec, write_image_bag, WrittenBag
from deeplab_ros.core.weights.locations import shared_path
from deeplab_ros.ros.dds_profile import large_image_dds_env, PROFILE_VARIABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAFFIC_VIDEO = 'data/video/traffic_frames.mp4'
PEDESTRIAN_VIDEO = 'data/video/vtest.avi'
FIXED_START_TIME = 1_700_000_000.25


def video_path(relative: str) -> Path:
    """A video of the shared assets (clear error naming where it was looked for)."""
    return shared_path(relative, hint='The test bags are made from the shared footage.')


def make_bag(output: Path, video: str, *, max_frames: int, resize: tuple[int, int] | None,
             rate: float | None = None, storage: str = 'mcap', version: int = 9,
             encoding: str = 'rgb8', image_topic: str = '/camera/image_raw',
             camera_info_topic: str = '/camera/camera_info',
             start_time: float = FIXED_START_TIME) -> WrittenBag:
    """Write a bag of the first ``max_frames`` frames of a shared video."""
    spec = ImageBagSpec(output=output, image_topic=image_topic,
                        camera_info_topic=camera_info_topic, frame_id='test_camera',
                        rate=rate, start_time=start_time, max_frames=max_frames, resize=resize,
                        encoding=encoding, storage=storage, version=version)
    return write_image_bag(spec, video_path(video))


def ros_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes: this test run's DDS isolation, the repo on the path."""
    env = dict(os.environ)
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['PYTHONUNBUFFERED'] = '1'
    env.update(extra or {})
    return env


def large_image_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`ros_environment` with the shipped large-image Fast DDS profile applied the way
    the launch file applies it (:func:`deeplab_ros.ros.dds_profile.large_image_dds_env`)."""
    env = ros_environment(extra)
    large_image_dds_env(env)
    return env


def bag_command(*args: str) -> list[str]:
    """The ``deeplab-ros-bag`` command line run with this Python."""
    return [sys.executable, '-m', 'deeplab_ros.tools.bag', *args]


def run_bag_cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``deeplab-ros-bag ARGS`` to completion as its own process."""
    return subprocess.run(bag_command(*args), env=ros_environment(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def start_bag_cli(*args: str) -> subprocess.Popen:
    """Start ``deeplab-ros-bag ARGS`` in the background (stop with :func:`stop_process`)."""
    return subprocess.Popen(bag_command(*args), env=ros_environment(), cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str]:
    """SIGINT a process, wait for it (kill it if it hangs) and return (exit code, output)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        return -9, output or ''
    return process.returncode, output or ''


def child_processes(pid: int | None = None) -> list[int]:
    """Ids of the live child processes of ``pid`` (default: this process), from /proc."""
    pid = os.getpid() if pid is None else pid
    children = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != 'Z':
            children.append(int(entry.name))
    return children


def topics_in(names: Sequence[str], namespace: str = '') -> list[str]:
    """Absolute topic names under ``namespace``."""
    prefix = '/' + namespace.strip('/') if namespace.strip('/') else ''
    return [f'{prefix}/{name.lstrip("/")}' for name in names]


_IMAGE_PROBE = '''
import sys, time
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String
role, count, ack_wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rclpy.init(args=['image_probe'])
node = Node('image_probe_' + role)
if role == 'pub':
    publisher = node.create_publisher(Image, 'image_probe', qos_profile_sensor_data)
    acked = set()
    node.create_subscription(String, 'image_probe_ack', lambda m: acked.add(m.data), 100)
    deadline = time.monotonic() + 60.0
    while (publisher.get_subscription_count() == 0
           or node.count_publishers('image_probe_ack') == 0) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)
    message = Image(height=480, width=640, encoding='rgb8', step=1920,
                    data=bytes(640 * 480 * 3))
    for index in range(count):
        message.header.frame_id = str(index)
        publisher.publish(message)
        # The next image only once this one was acknowledged (or given up on): the
        # subscriber's history never overflows, so a lost image is lost in transport.
        waited = time.monotonic() + ack_wait
        while str(index) not in acked and time.monotonic() < waited:
            rclpy.spin_once(node, timeout_sec=0.01)
    print('ACKED', len(acked))
else:
    received = set()
    ack = node.create_publisher(String, 'image_probe_ack', 100)

    def on_image(message):
        received.add(message.header.frame_id)
        ack.publish(String(data=message.header.frame_id))
    node.create_subscription(Image, 'image_probe', on_image, qos_profile_sensor_data)
    deadline = time.monotonic() + 60.0 + count * ack_wait
    while time.monotonic() < deadline and len(received) < count:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(0.5)  # let the last acknowledgement go out
    print('RECEIVED', len(received))
node.destroy_node()
rclpy.shutdown()
'''


def best_effort_image_transfer(count: int, ack_wait_s: float, large_image_profile: bool) -> int:
    """Send ``count`` 640x480 rgb8 best-effort images between two processes; return how many
    arrived. Each image is sent once the previous one was acknowledged (or after
    ``ack_wait_s``), so what is lost is lost in transport, not to a slow reader. Both
    processes with the shipped large-image profile, or with no profile at all."""
    if large_image_profile:
        env = large_image_environment()
    else:
        env = ros_environment()
        for name in PROFILE_VARIABLES:
            env.pop(name, None)
    command = [sys.executable, '-c', _IMAGE_PROBE]
    arguments = [str(count), str(ack_wait_s)]
    subscriber = subprocess.Popen(command + ['sub', *arguments], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        publisher = subprocess.run(command + ['pub', *arguments], env=env, capture_output=True,
                                   text=True, timeout=120 + count * ack_wait_s, check=False)
        assert publisher.returncode == 0, publisher.stdout + publisher.stderr
        output, _ = subscriber.communicate(timeout=120 + count * ack_wait_s)
    finally:
        if subscriber.poll() is None:
            stop_process(subscriber)
    lines = [line for line in output.splitlines() if line.startswith('RECEIVED')]
    assert lines, output
    return int(lines[-1].split()[1])
