"""The segmentation node as a child process, started the way a launch file starts it.

:func:`node_command` builds the command line (the ``segmentation_node`` entry point, or any
``executable``, with ``--ros-args``: node name, parameters file, parameters, remaps,
namespace); :class:`NodeProcess` runs it and stops it with SIGINT, like ``ros2 launch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os
from pathlib import Path
import signal
import subprocess
import sys

from deeplab_ros.package_files import config_file
from deeplab_ros.ros.segmentation_node import NODE_NAME

NODE_MODULE = 'deeplab_ros.ros.executable'


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
