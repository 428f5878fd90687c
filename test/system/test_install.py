"""The package as ROS users run it: ``colcon build`` into a workspace, ``source
install/setup.bash``, ``ros2 launch deeplab_ros segment.launch.py``, the ``ros2`` command line,
and Ctrl-C / SIGTERM.

One workspace is built per test session (the README's "In a ROS 2 workspace" steps: the
checkout in ``src/deeplab_ros``, ``colcon build --packages-select deeplab_ros``); every command
then runs from that install space in a shell that sourced ``install/setup.bash``, with no
variable pointing at the repository or the shared folder.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from support.bags import make_bag, PEDESTRIAN_VIDEO

from deeplab_ros.core.weights.pretrained import DEFAULT_PRETRAINED
from deeplab_ros.ros.spinning import SpunNode, wait_until
from deeplab_ros.ros.stamps import header_key


REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE = 'front'
NODE = f'/{NAMESPACE}/deeplab_segmentation'
CAMERA_TOPIC = '/front_cam/image_raw'  # remapped onto the node's "image" input
INPUT_SIZE = 129  # not the default (0): shows that the params file reached the node
FRAMES = 4
# No ros2 daemon (it would outlive the test); time for discovery on a busy machine.
CLI_OPTIONS = '--no-daemon --spin-time 5'


def _shell_env() -> dict[str, str]:
    """A user's shell: the environment's bin/ on PATH, nothing pointing at this checkout."""
    env = dict(os.environ)
    for key in ('_ROS_WHEELS_BOOTSTRAP_COMPLETE', 'PYTHONPATH', 'DEEPLAB_ROS_SHARED',
                'AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH'):
        env.pop(key, None)
    env['PATH'] = os.pathsep.join([str(VENV_BIN), env.get('PATH', '')])
    env['PYTHONUNBUFFERED'] = '1'
    env['RCUTILS_COLORIZED_OUTPUT'] = '0'
    return env


def _sourced(workspace: Path, command: str) -> list[str]:
    return ['bash', '-c', f'source {shlex.quote(str(workspace / "install" / "setup.bash"))} '
                          f'&& exec {command}']


def _run(workspace: Path, command: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(_sourced(workspace, command), cwd=workspace, env=_shell_env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='session')
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colcon workspace with this checkout in src/ (its tracked and new files), built."""
    root = tmp_path_factory.mktemp('ros2_ws')
    package = root / 'src' / 'deeplab_ros'
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for relative in filter(None, listed.decode().split('\0')):
        source = REPO_ROOT / relative
        if source.is_file():
            (package / relative).parent.mkdir(parents=True, exist_ok=True)
            (package / relative).write_bytes(source.read_bytes())
    build = subprocess.run([str(VENV_BIN / 'colcon'), 'build', '--packages-select',
                            'deeplab_ros'], cwd=root, env=_shell_env(), capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    libexec = root / 'install' / 'deeplab_ros' / 'lib' / 'deeplab_ros'
    assert (libexec / 'segmentation_node').is_file(), sorted(os.listdir(root / 'install'))
    return root


class Launch:
    """``ros2 launch`` started from a sourced shell in its own process group."""

    def __init__(self, workspace: Path, command: str, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open('w')
        self.process = subprocess.Popen(
            _sourced(workspace, command), cwd=workspace, env=_shell_env(), stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log_path.read_text(errors='replace')

    def node_pid(self) -> int:
        match = re.search(r'segmentation_node-\d+\]: process started with pid \[(\d+)\]',
                          self.text())
        assert match, self.text()[-3000:]
        return int(match.group(1))

    def group_members(self) -> list[int]:
        """Live processes of the launch's process group (from /proc)."""
        members = []
        for entry in Path('/proc').iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / 'stat').read_text().rsplit(')', 1)[1].split()
                except OSError:
                    continue
                if int(fields[2]) == self.process.pid and fields[0] != 'Z':
                    members.append(int(entry.name))
        return members

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        for pid in self.group_members():
            os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / 'front_camera.yaml'
    path.write_text('/**:\n  ros__parameters:\n'
                    f'    input_size: {INPUT_SIZE}\n    device: cpu\n')
    return path


def _launch(workspace: Path, tmp_path: Path, params_file: Path) -> Iterator[Launch]:
    launch = Launch(workspace, f'ros2 launch deeplab_ros segment.launch.py '
                               f'namespace:={NAMESPACE} image:={CAMERA_TOPIC} '
                               f'params_file:={params_file}', tmp_path / 'launch.log')
    try:
        yield launch
    finally:
        launch.kill()


def _wait_active(workspace: Path, launch: Launch, node: str = NODE,
                 timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    state = ''
    while time.monotonic() < deadline and launch.process.poll() is None:
        result = _run(workspace, f'ros2 lifecycle get {node} {CLI_OPTIONS}')
        state = result.stdout.strip()
        if state.startswith('active'):
            return state
        time.sleep(1.0)
    return f'{state!r}; launch log:\n{launch.text()[-3000:]}'


def test_colcon_install_launches_with_namespace_remap_and_params_file(
        workspace: Path, tmp_path: Path, params_file: Path) -> None:
    from sensor_msgs.msg import Image  # noqa: PLC0415
    from vision_msgs.msg import Classification  # noqa: PLC0415

    bag = make_bag(tmp_path / 'bag', PEDESTRIAN_VIDEO, max_frames=FRAMES, resize=(320, 240),
                   rate=2.0, image_topic=CAMERA_TOPIC, camera_info_topic='/front_cam/info')
    for launch in _launch(workspace, tmp_path, params_file):
        state = _wait_active(workspace, launch)
        assert state.startswith('active [3]'), state

        parameter = _run(workspace, f'ros2 param get {NODE} input_size {CLI_OPTIONS}')
        assert parameter.stdout.strip() == f'Integer value is: {INPUT_SIZE}', parameter
        described = _run(workspace, f'ros2 param describe {NODE} input_size {CLI_OPTIONS}')
        assert 'Parameter name: input_size' in described.stdout, described
        assert 'Type: integer' in described.stdout and 'Description:' in described.stdout
        topics = _run(workspace, f'ros2 topic list {CLI_OPTIONS}').stdout.split()
        for topic in (CAMERA_TOPIC, f'/{NAMESPACE}/segmentation/labels',
                      f'/{NAMESPACE}/segmentation/classes',
                      f'/{NAMESPACE}/segmentation/label_info'):
            assert topic in topics, topics

        with SpunNode('install_probe') as ros:
            inputs, labels, classes = [], [], []
            ros.node.create_subscription(Image, CAMERA_TOPIC,
                                         lambda m: inputs.append(m.header), 10)
            ros.node.create_subscription(Image, f'/{NAMESPACE}/segmentation/labels',
                                         labels.append, 10)
            ros.node.create_subscription(Classification, f'/{NAMESPACE}/segmentation/classes',
                                         classes.append, 10)
            played = _run(workspace, f'ros2 run deeplab_ros deeplab-ros-bag play {bag.path} '
                                     '--wait-for-subscribers 30 --subscribers 2', timeout=120)
            assert played.returncode == 0, played.stdout + played.stderr
            # The bag plays at its own pace: a frame that arrives while the node is busy may be
            # replaced by a newer one (by design), so not every frame need come back. Each
            # processed frame gives labels and classes with its own header.
            assert wait_until(lambda: len(inputs) == FRAMES and labels and classes, 60.0)
            seen: dict[str, list] = {}

            def both_outputs_of_the_same_frames() -> bool:
                seen['labels'] = sorted(header_key(m.header) for m in list(labels))
                seen['classes'] = sorted(header_key(m.header) for m in list(classes))
                return seen['labels'] == seen['classes']
            assert wait_until(both_outputs_of_the_same_frames, 60.0), seen

        keys = sorted(header_key(h) for h in inputs)
        assert len(keys) == FRAMES
        processed = seen['labels']
        assert processed and set(processed) <= set(keys) and len(set(processed)) == len(processed)
        assert {(m.width, m.height, m.encoding) for m in labels} == {(320, 240, 'mono8')}
        assert all(m.results for m in classes)

        _ctrl_c(launch)


def _ctrl_c(launch: Launch) -> None:
    """Ctrl-C in the terminal (SIGINT to the whole process group): everything exits 0."""
    node_pid = launch.node_pid()
    os.killpg(launch.process.pid, signal.SIGINT)
    assert launch.wait(60.0) == 0, launch.text()[-3000:]
    log = launch.text()
    assert 'process has died' not in log, log[-3000:]
    assert re.search(r'segmentation_node-\d+\]: process has finished cleanly', log), log
    assert wait_until(lambda: not Path(f'/proc/{node_pid}').exists()
                      and not launch.group_members(), 10.0), launch.group_members()


def test_sigterm_to_ros2_launch_alone_stops_the_node(workspace: Path, tmp_path: Path,
                                                     params_file: Path) -> None:
    """Upstream Jazzy launch is terminated by SIGTERM without stopping what it started
    (status -15); the node follows its parent out cleanly, so nothing is left behind."""
    for launch in _launch(workspace, tmp_path, params_file):
        state = _wait_active(workspace, launch)
        assert state.startswith('active [3]'), state
        node_pid = launch.node_pid()
        launch.process.send_signal(signal.SIGTERM)  # the launch process only
        assert launch.wait(60.0) in (0, -signal.SIGTERM), launch.text()[-3000:]
        log = launch.text()
        assert 'process has died' not in log, log[-3000:]
        assert wait_until(lambda: not Path(f'/proc/{node_pid}').exists()
                          and not launch.group_members(), 10.0), launch.group_members()


def test_models_command_runs_from_the_install_space(workspace: Path) -> None:
    listed = _run(workspace, 'ros2 run deeplab_ros deeplab-ros-models list')
    assert listed.returncode == 0, listed.stderr
    assert f'{DEFAULT_PRETRAINED} (default) [cached]' in listed.stdout, listed.stdout


README_SECTION = '## In a ROS 2 workspace'
# Steps the test environment replaces: the checkout is copied, packages come from its venv.
NOT_RUNNABLE_HERE = ('git clone', 'apt install', 'pip install')


def test_readme_workspace_steps_work_as_written(workspace: Path, tmp_path: Path) -> None:
    text = (REPO_ROOT / 'README.md').read_text()
    block = text[text.index(README_SECTION):].split('```bash\n', 1)[1].split('```', 1)[0]
    steps = [line.split('  #')[0].strip() for line in block.splitlines() if line.strip()]
    runnable = [step for step in steps if not any(m in step for m in NOT_RUNNABLE_HERE)]
    assert len(steps) - len(runnable) == len(NOT_RUNNABLE_HERE), steps
    *preparation, launch_step = runnable
    assert launch_step.startswith('ros2 launch deeplab_ros segment.launch.py'), launch_step

    script = ' && '.join(preparation).replace('~/ros2_ws', shlex.quote(str(workspace)))
    prepared = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=_shell_env(),
                              capture_output=True, text=True, timeout=600)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    assert f'{DEFAULT_PRETRAINED}: ' in prepared.stdout, prepared.stdout

    launch = Launch(workspace, launch_step, tmp_path / 'launch.log')
    try:
        state = _wait_active(workspace, launch, node='/deeplab_segmentation')
        assert state.startswith('active [3]'), state
        _ctrl_c(launch)
    finally:
        launch.kill()


def test_colcon_test_runs_the_package_tests_with_the_declared_plugins(workspace: Path) -> None:
    """`colcon test` runs pytest with setup.cfg's options (--timeout needs pytest-timeout, a
    declared test dependency); a small selection keeps it quick."""
    tested = _run(workspace, 'colcon test --packages-select deeplab_ros --pytest-args '
                             'test/system/test_ros_toolchain.py test/unit/test_metrics.py',
                  timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    result = _run(workspace, 'colcon test-result --all')
    assert result.returncode == 0, result.stdout
    match = re.search(r'(\d+) tests, 0 errors, 0 failures, 0 skipped', result.stdout)
    assert match and int(match.group(1)) > 20, result.stdout
