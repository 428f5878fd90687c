"""Node and consumer that find each other only through a Fast DDS discovery server.

The set-up of docs/remote.md on one host, loopback only: ``fast-discovery-server`` on
127.0.0.1 with a free port, the node process and a consumer process (``support.remote_consumer``)
each a client of it through ``ROS_DISCOVERY_SERVER``. Neither runs the automatic discovery:
Fast DDS turns a participant into a client of the listed servers when that variable is set
(RTPSDomain.cpp, ``clientServerEnvironmentCreationOverride``, Fast DDS 2.14) and a client
announces itself to its servers only. The negative control shows it: with the same
environment and no server running yet, the consumer does not find the node; once the server
runs, it does, configures and activates it over its lifecycle services, feeds it real frames
and gets the compressed outputs, which decode to the raw labels.

``ROS_AUTOMATIC_DISCOVERY_RANGE`` stays at its default (what a multi-host set-up uses):
rmw_fastrtps then leaves Fast DDS's discovery settings alone; with ``OFF`` it limits a
participant to itself (participant.cpp of rmw_fastrtps, jazzy), so no client would match.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import select
import shutil
import socket
import subprocess
import sys
import time

import numpy as np

from deeplab_ros.ros.node_process import default_params_file, node_command, NodeProcess
from support.rgbd import rgbd_dir

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> Path | None:
    """A ROS tool of this Python's environment (the venv's bin), else from PATH."""
    beside = Path(sys.executable).with_name(name)
    found = beside if beside.is_file() else shutil.which(name)
    return Path(found) if found else None


SERVER = _tool('fast-discovery-server')
ROS2 = _tool('ros2')


class ServerPort:
    """The server's UDP port on 127.0.0.1, held open until the server starts.

    Until then the clients' pings to their server land here: each RTPS message names its
    participant (the GUID prefix in its header), so the test knows which clients are alive.
    """

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(('127.0.0.1', 0))
        self.port = int(self.socket.getsockname()[1])
        self.participants: set[bytes] = set()

    def wait_for_participants(self, count: int, timeout: float) -> bool:
        """Collect pings until ``count`` participants have pinged (False on timeout)."""
        deadline = time.monotonic() + timeout
        while len(self.participants) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.socket], [], [], left)[0]:
                return False
            data = self.socket.recv(65536)
            if data[:4] == b'RTPS':
                self.participants.add(data[8:20])
        return True

    def release(self) -> int:
        """Close the socket (for the server to bind); returns the port."""
        self.socket.close()
        return self.port


def _client_environment(port: int) -> dict[str, str]:
    """This process's environment, made a client of the server on 127.0.0.1:``port``."""
    env = dict(os.environ)
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)  # the child sets up its own libraries
    env['ROS_DISCOVERY_SERVER'] = f'127.0.0.1:{port}'
    env.pop('ROS_AUTOMATIC_DISCOVERY_RANGE', None)
    env.pop('ROS_SUPER_CLIENT', None)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT / 'test'),
                                                      env.get('PYTHONPATH', '')]))
    return env


class Lines:
    """Lines of a child's stdout, read with a timeout."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.seen: list[str] = []

    def until(self, accept, timeout: float) -> str:
        """The next line ``accept`` returns true for (earlier ones are kept in ``seen``)."""
        stream = self.process.stdout
        assert stream is not None
        while True:
            ready, _, _ = select.select([stream], [], [], timeout)
            assert ready, f'nothing within {timeout:g} s; so far: {self.seen[-20:]}'
            line = stream.readline()
            assert line, f'the process ended (status {self.process.poll()}): {self.seen[-20:]}'
            self.seen.append(line.rstrip())
            if accept(line):
                return line

    def next_json(self, timeout: float) -> dict:
        """The next JSON object the child printed (skipping other lines)."""
        return json.loads(self.until(lambda line: line.startswith('{'), timeout))


def test_node_and_consumer_meet_only_through_the_discovery_server(tmp_path: Path) -> None:
    # Both come with the ROS 2 wheels `make setup` installs: missing, the setup is broken.
    assert SERVER is not None and ROS2 is not None, \
        'fast-discovery-server or ros2 missing: run make setup'
    server_port = ServerPort()
    env = _client_environment(server_port.port)
    frames = [rgbd_dir() / 'color' / f'{number}.png' for number in (1, 3)]
    # Reliable frames: best-effort 640x480 images across processes over UDP lose fragments.
    parameters = {'input_size': 257,
                  'qos_overrides./image.subscription.reliability': 'reliable'}
    node = NodeProcess(node_command(default_params_file(), parameters=parameters),
                       env=env, log_path=tmp_path / 'node.log')
    consumer = server = None
    try:
        # The node is up and a client of the (not yet running) server.
        assert server_port.wait_for_participants(1, 120.0), node.log_text()
        consumer = subprocess.Popen(
            [sys.executable, '-m', 'support.remote_consumer', '--out',
             str(tmp_path / 'out.npz'), '--isolation-s', '10', '--frames', *map(str, frames)],
            env=env, cwd=ROOT / 'test', stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        lines = Lines(consumer)
        # Negative control: both clients alive, same environment, no server -> they do not
        # meet (the consumer looks for the node for 10 s; plain discovery takes under 1 s).
        assert server_port.wait_for_participants(2, 120.0), lines.seen
        assert lines.next_json(120.0) == {'isolated': True}
        assert node.running(), node.log_text()
        server = subprocess.Popen(
            [str(SERVER), '-i', '0', '-l', '127.0.0.1', '-p', str(server_port.release())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        Lines(server).until(lambda line: 'Server is running' in line, 30.0)
        assert 'discovered_after_s' in lines.next_json(120.0)
        done = lines.next_json(600.0)
        assert done == {'done': len(frames)}, (done, node.log_text()[-3000:])
        assert consumer.wait(60.0) == 0

        # The super client of docs/remote.md sees every topic (the ros2 CLI).
        listed = subprocess.run(
            [str(ROS2), 'topic', 'list', '--no-daemon', '--spin-time', '5'],
            env={**env, 'ROS_SUPER_CLIENT': 'TRUE'}, capture_output=True, text=True,
            timeout=120)
        assert '/segmentation/labels/compressed' in listed.stdout.split(), listed
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.kill()
            consumer.wait()
        exit_code = node.stop()
        if server is not None:
            server.terminate()
            server.wait(30)
        server_port.release()
    assert exit_code == 0, node.log_text()[-3000:]

    result = np.load(tmp_path / 'out.npz')
    formats = json.loads(str(result['formats']))
    assert sorted((index, name, image_format, encoding)
                  for index, name, image_format, encoding in formats) == sorted(
        [(index, 'labels', 'mono8; png compressed ', 'mono8') for index in range(2)]
        + [(index, 'overlay', 'rgb8; jpeg compressed bgr8', 'rgb8') for index in range(2)])
    for index in range(len(frames)):
        labels = result[f'labels_{index}']
        assert labels.shape == tuple(result[f'size_{index}']) == (480, 640)
        assert len(np.unique(labels)) > 1
        assert np.array_equal(result[f'labels_compressed_{index}'], labels)
        assert result[f'overlay_compressed_{index}'].shape == (480, 640, 3)
