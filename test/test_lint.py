"""Code style (flake8 with the project's setup.cfg: 99 columns) over the package, tests and
launch files."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_flake8() -> None:
    pytest.importorskip('flake8', reason='flake8 is installed by make setup')
    completed = subprocess.run(
        [sys.executable, '-m', 'flake8', '--max-line-length', '99', 'deeplab_ros', 'test',
         'launch', 'setup.py'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
