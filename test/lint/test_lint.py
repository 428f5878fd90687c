"""Code style and types: flake8, pydocstyle and mypy, with the settings of setup.cfg.

flake8 (99 columns) checks the package, the tests and the launch files; pydocstyle checks the
docstrings of the package and the launch files with the Google convention (ament_pep257's
convention is not used: it wants summaries on the line after the opening quotes and rejects the
Google ``Args:``/``Returns:``/``Raises:`` sections the package documents its API with); mypy
type-checks the ROS-free packages, ``deeplab_ros/core`` and ``deeplab_ros/streaming`` (the
``[mypy]`` section of setup.cfg). A missing tool fails its test: it is never skipped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]


def _run_tool(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module arguments`` from the repository root, failing if it is missing."""
    assert importlib.util.find_spec(module) is not None, (
        f'{module} is not installed in this environment: run `make setup`')
    return subprocess.run([sys.executable, '-m', module, *arguments], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_flake8() -> None:
    completed = _run_tool('flake8', '--max-line-length', '99', 'deeplab_ros', 'test', 'launch',
                          'setup.py')
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_pydocstyle() -> None:
    completed = _run_tool('pydocstyle', 'deeplab_ros', 'launch')
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_mypy() -> None:
    completed = _run_tool('mypy', '--config-file', 'setup.cfg', 'deeplab_ros/core',
                          'deeplab_ros/streaming')
    assert completed.returncode == 0, completed.stdout + completed.stderr
