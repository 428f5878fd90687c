"""Fixtures of every in-process node test."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def collect_closed_nodes() -> Iterator[None]:
    """Collect what a test left once it has returned (its locals gone).

    rcl keeps one /rosout publisher per node name and unregisters it when any node of that name
    is destructed: a closed node collected later, while the next test's node of the same name
    runs, would silence that node's log on /rosout.
    """
    yield
    gc.collect()
