"""Shared pytest configuration: DDS isolation, shared assets, optional long runs, layers.

The tests are in layers, one folder each, and each folder gives its tests their marker:

- ``unit/``: no DDS, no process, no full-size model (with ``lint/``: ``make test-fast``);
- ``node/``: the node in this process over real DDS (``ros``);
- ``system/``: node processes, bags, the ROS CLI, launch, a colcon install (``ros``);
- ``models/``: real pretrained models: interpreter parity, ONNX, accuracy, fine-tuning
  (``models``);
- ``lint/``: flake8, pydocstyle, mypy, import graph, docs checks.
"""

from __future__ import annotations

import os
from pathlib import Path
import random

import pytest

# Isolate DDS before anything imports rclpy: localhost discovery only and a domain id of our
# own, so parallel runs on one machine never see each other's messages.
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.pop('ROS_LOCALHOST_ONLY', None)
# Many short-lived DDS participants in one process (each in-process node and test client
# has its own context) make Fast DDS's shared-memory transport lose discovery now and then;
# tests use UDP on the loopback. Real deployments are unaffected (see config/ for the
# large-image profile with a bigger shared-memory segment).
os.environ.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'UDPv4')
if 'ROS_DOMAIN_ID' not in os.environ:
    os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(1, 101))

from deeplab_ros.core.weights.locations import shared_dir  # noqa: E402


TEST_ROOT = Path(__file__).resolve().parent
#: Marker given to every test of a folder.
LAYER_MARKERS = {'node': 'ros', 'system': 'ros', 'models': 'models'}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its layer folder (see the module docstring)."""
    for item in items:
        try:
            layer = Path(str(item.fspath)).resolve().relative_to(TEST_ROOT).parts[0]
        except ValueError:
            continue
        marker = LAYER_MARKERS.get(layer)
        if marker is not None:
            item.add_marker(marker)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption('--run-slow', action='store_true', default=False,
                     help='run soak/churn tests at their full size')


@pytest.fixture(scope='session')
def shared() -> Path:
    """The shared assets folder; fails with a clear message when it is missing."""
    path = shared_dir()
    if not (path / 'weights').is_dir() or not (path / 'data').is_dir():
        pytest.fail(f'Shared assets not found: expected weights/ and data/ under {path} '
                    '(set DEEPLAB_ROS_SHARED to the folder that holds them).')
    return path


@pytest.fixture(scope='session')
def full_size(request: pytest.FixtureRequest) -> bool:
    """True when long tests should run at full size (``--run-slow``)."""
    return bool(request.config.getoption('--run-slow'))
