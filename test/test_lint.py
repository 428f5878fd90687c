"""Code style: flake8 and pydocstyle, with the settings of the project's setup.cfg.

flake8 (99 columns) checks the package, the tests and the launch files; pydocstyle checks the
docstrings of the package and the launch files with the Google convention (ament_pep257's
convention is not used: it wants summaries on the line after the opening quotes and rejects the
Google ``Args:``/``Returns:``/``Raises:`` sections the package documents its API with).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]


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
