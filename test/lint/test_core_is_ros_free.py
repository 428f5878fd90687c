"""The ROS-free packages never import ROS: statically and at run time.

They are the perception core (``deeplab_ros/core``, every subpackage) and the streaming
primitives (``deeplab_ros/streaming``).
"""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

PACKAGE = Path(__file__).resolve().parents[2] / 'deeplab_ros'
ROS_FREE = (PACKAGE / 'core', PACKAGE / 'streaming')
ROS = re.compile(r'^\s*(import|from)\s+(rclpy|\w+_msgs|launch|ament_index_python)\b', re.M)


def _sources() -> list[Path]:
    return sorted(path for folder in ROS_FREE for path in folder.rglob('*.py'))


def test_the_ros_free_folders_are_packages_with_modules() -> None:
    for folder in ROS_FREE:
        assert (folder / '__init__.py').is_file(), folder
    subpackages = {path.parent for path in _sources()} - set(ROS_FREE)
    assert {PACKAGE / 'core' / name for name in ('models', 'weights', 'inference')} <= \
        subpackages
    assert all((folder / '__init__.py').is_file() for folder in subpackages)


def test_no_ros_imports_in_ros_free_sources() -> None:
    offenders = [str(path) for path in _sources() if ROS.search(path.read_text())]
    assert offenders == []


def test_importing_every_ros_free_module_loads_no_ros_module() -> None:
    modules = sorted('.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)
                     .removesuffix('.__init__') for path in _sources())
    assert 'deeplab_ros.streaming.statistics' in modules
    code = ('import importlib, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'launch') "
            "or m.split('.')[0].endswith('_msgs')]\n"
            'print(bad); sys.exit(1 if bad else 0)')
    completed = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE.parent,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
