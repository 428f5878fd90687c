"""The perception core never imports ROS: statically and at run time."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

CORE = Path(__file__).resolve().parents[1] / 'deeplab_ros' / 'core'
ROS = re.compile(r'^\s*(import|from)\s+(rclpy|\w+_msgs|launch|ament_index_python)\b', re.M)


def test_no_ros_imports_in_core_sources() -> None:
    offenders = [str(path) for path in CORE.rglob('*.py') if ROS.search(path.read_text())]
    assert offenders == []


def test_importing_every_core_module_loads_no_ros_module() -> None:
    modules = sorted('.'.join(path.relative_to(CORE.parents[1]).with_suffix('').parts)
                     for path in CORE.rglob('*.py'))
    code = ('import importlib, sys\n'
            f'for name in {modules!r}: importlib.import_module(name)\n'
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'launch') "
            "or m.split('.')[0].endswith('_msgs')]\n"
            'print(bad); sys.exit(1 if bad else 0)')
    completed = subprocess.run([sys.executable, '-c', code], cwd=CORE.parents[1],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
