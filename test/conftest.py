"""Shared pytest configuration: DDS isolation, shared assets, optional long runs."""

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
