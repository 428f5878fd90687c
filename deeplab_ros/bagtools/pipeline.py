"""Run a recorded bag through the segmentation node and record what it publishes.

The node runs as its own process through its normal entry point
(``deeplab_ros.ros.segmentation_node:main``, the ``segmentation_node`` executable) with a
parameters file, and is configured and activated over its lifecycle services, the way
``launch/segment.launch.py`` brings it up. The bag is played and the outputs are recorded from
this process; publish times of the inputs are kept so latencies can be measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from deeplab_ros.bagtools.config_files import config_file
from deeplab_ros.bagtools.player import BagPlayer
from deeplab_ros.bagtools.recorder import BagRecorder, RecordingStats

NODE_NAME = 'deeplab_segmentation'
NODE_MODULE = 'deeplab_ros.ros.segmentation_node'
OUTPUT_TOPICS = ('segmentation/labels', 'segmentation/color', 'segmentation/overlay',
                 'segmentation/confidence', 'segmentation/classes',
                 'segmentation/camera_info', 'segmentation/label_info',
                 'segmentation/detections', 'segmentation/points', 'segmentation/detections_3d')


def default_params_file() -> Path:
    """The node's parameters file (config/segment.yaml of this checkout or installation)."""
    return config_file('segment.yaml')


def node_command(params_file: Path, *, parameters: Mapping[str, object] | None = None,
                 remaps: Mapping[str, str] | None = None, namespace: str = '',
                 executable: Sequence[str] | None = None) -> list[str]:
    """Command line of the node process: entry point + ``--ros-args`` like launch builds."""
    command = list(executable or [sys.executable, '-m', NODE_MODULE])
    command += ['--ros-args', '-r', f'__node:={NODE_NAME}', '--params-file', str(params_file)]
    if namespace:
        command += ['-r', f'__ns:=/{namespace.strip("/")}']
    for name, value in (parameters or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ['-p', f'{name}:={text}']
    for old, new in (remaps or {}).items():
        command += ['-r', f'{old}:={new}']
    return command


class NodeProcess:
    """The segmentation node as a child process (stopped with SIGINT, like launch does)."""

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                 log_path: Path | None = None, cwd: Path | None = None) -> None:
        self.command = list(command)
        self._log_path = log_path
        self._log = open(log_path, 'w') if log_path else subprocess.DEVNULL  # noqa: SIM115
        environment = dict(os.environ if env is None else env)
        environment.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
        environment.setdefault('PYTHONUNBUFFERED', '1')
        self.process = subprocess.Popen(self.command, env=environment, cwd=cwd,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def running(self) -> bool:
        """True while the process is alive."""
        return self.process.poll() is None

    def log_text(self) -> str:
        """What the node printed so far (when started with a log file)."""
        if self._log_path is None or not self._log_path.exists():
            return ''
        return self._log_path.read_text(errors='replace')

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT, wait up to ``timeout`` (then SIGKILL); return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.process.returncode


class LifecycleClient:
    """Drives a lifecycle node through ``<node>/change_state`` and ``<node>/get_state``."""

    TRANSITIONS = {'configure': 1, 'cleanup': 2, 'activate': 3, 'deactivate': 4,
                   'shutdown': 6}

    def __init__(self, node: Node, target: str,
                 alive: Callable[[], bool] | None = None) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState  # noqa: PLC0415

        self._node = node
        self._alive = alive or (lambda: True)
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self._change_type = ChangeState
        self._get_type = GetState
        self.target = target
        self._ready: set = set()

    def _call(self, client, request, timeout: float):
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.2):
            self._check_alive(client)
            if time.monotonic() > deadline:
                raise TimeoutError(f'{client.srv_name} did not appear within {timeout:g} s: '
                                   f'is the node {self.target} running?')
        if client not in self._ready:
            # "Service available" means the request path is matched; give discovery a moment
            # to match the reply path too, or the first response can be lost.
            time.sleep(0.5)
            self._ready.add(client)
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        while not done.wait(0.2):
            self._check_alive(client)
            if time.monotonic() > deadline:
                raise TimeoutError(f'{client.srv_name} did not answer within {timeout:g} s.')
        return future.result()

    def _check_alive(self, client) -> None:
        if not self._alive():
            raise RuntimeError(f'The node process exited while waiting for {client.srv_name}; '
                               'see its log for the cause.')

    def state(self, timeout: float = 10.0) -> str:
        """The node's current state label ('unconfigured', 'inactive', 'active', ...)."""
        return self._call(self._get, self._get_type.Request(), timeout).current_state.label

    def change(self, transition: str, timeout: float = 120.0) -> bool:
        """Request a transition by name; True when the node accepted it."""
        request = self._change_type.Request()
        if transition == 'shutdown':
            # Shutdown has one transition id per source state; the label works from any.
            request.transition.label = transition
        else:
            request.transition.id = self.TRANSITIONS[transition]
        return bool(self._call(self._change, request, timeout).success)

    def bring_up(self, timeout: float = 180.0) -> None:
        """configure + activate, like launch's autostart; RuntimeError naming what failed."""
        for transition in ('configure', 'activate'):
            if not self.change(transition, timeout):
                raise RuntimeError(f'{self.target} refused to {transition} (state '
                                   f'{self.state()}); see the node log for the cause.')

    def destroy(self) -> None:
        """Release the service clients."""
        self._node.destroy_client(self._change)
        self._node.destroy_client(self._get)


@dataclass
class SpunNode:
    """An rclpy context + node spun by a background thread (stop with :meth:`close`)."""

    name: str
    context: Context = field(init=False)
    node: Node = field(init=False)

    def __post_init__(self) -> None:
        self.context = Context()
        rclpy.init(args=['deeplab_bag_pipeline'], context=self.context)
        self.node = Node(self.name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=f'{self.name}_spin',
                                        daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._executor.shutdown()
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


class TimedPlayer(BagPlayer):
    """A :class:`BagPlayer` that notes the wall time each image was published at."""

    def __init__(self, *args: object, image_topic: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.image_topic = image_topic
        self.publish_times: dict[tuple[int, int, str], float] = {}

    def _publish(self, topic: str, message: object) -> None:
        if topic == self.image_topic:
            header = message.header
            self.publish_times[(header.stamp.sec, header.stamp.nanosec,
                                header.frame_id)] = time.time()
        super()._publish(topic, message)


@dataclass
class PipelineRun:
    """What :func:`run_bag_through_node` did."""

    recording: RecordingStats
    images_published: int
    publish_times: dict[tuple[int, int, str], float]
    node_exit_code: int | None
    node_log: str
    wall_s: float
    node_pid: int = 0


def run_bag_through_node(bag: Path, output_bag: Path, *, params_file: Path | None = None,
                         parameters: Mapping[str, object] | None = None,
                         image_topic: str = '/camera/image_raw',
                         camera_info_topic: str = '/camera/camera_info', depth_topic: str = '',
                         rate: float = 1.0,
                         log_path: Path | None = None, settle_s: float = 3.0,
                         env: Mapping[str, str] | None = None,
                         executable: Sequence[str] | None = None,
                         after_play: Callable[[Node, NodeProcess], None] | None = None
                         ) -> PipelineRun:
    """Start the node, bring it up, play ``bag`` into it, record its outputs, stop it.

    Recording ends ``settle_s`` seconds after the last new output message; then
    ``after_play(session_node, node_process)`` (optional) runs while the node is still
    active, before it is stopped with SIGINT. With ``input_transport: compressed`` among
    ``parameters`` the bag's ``<image_topic>/compressed`` is played; with ``depth_topic`` the
    depth images too (remapped onto the node's ``depth``).
    """
    started = time.monotonic()
    params_file = params_file or default_params_file()
    remaps = {'image': image_topic, 'camera_info': camera_info_topic}
    played = [camera_info_topic]
    if depth_topic:
        remaps['depth'] = depth_topic
        played.append(depth_topic)
    if (parameters or {}).get('input_transport') == 'compressed':
        image_topic = image_topic.rstrip('/') + '/compressed'
    played.insert(0, image_topic)
    command = node_command(params_file, parameters=parameters, executable=executable,
                           remaps=remaps)
    node_process = NodeProcess(command, env=env, log_path=log_path)
    session = SpunNode('deeplab_bag_pipeline')
    lifecycle = LifecycleClient(session.node, f'/{NODE_NAME}', alive=node_process.running)
    recorder = None
    exit_code = None
    try:
        recorder = BagRecorder(session.node, output_bag, [f'/{t}' for t in OUTPUT_TOPICS])
        lifecycle.bring_up()
        player = TimedPlayer(session.node, bag, rate=rate, image_topic=image_topic,
                             topics=tuple(played))
        player.wait_for_subscribers(30.0)
        _wait(lambda: '/segmentation/labels' in recorder.subscribed_topics, 30.0)
        stats = player.play()
        last_total, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < settle_s and node_process.running():
            if recorder.stats.total != last_total:
                last_total, last_change = recorder.stats.total, time.monotonic()
            time.sleep(0.1)
        if after_play is not None:
            after_play(session.node, node_process)
    finally:
        recording = recorder.close() if recorder is not None else None
        lifecycle.destroy()
        exit_code = node_process.stop()
        session.close()
    return PipelineRun(recording=recording,
                       images_published=stats.published.get(image_topic, 0),
                       publish_times=player.publish_times, node_exit_code=exit_code,
                       node_log=node_process.log_text(), wall_s=time.monotonic() - started,
                       node_pid=node_process.pid)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
