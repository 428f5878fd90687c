"""Nodes spun by a background thread, and polling until a condition holds.

For programs that talk to the segmentation node from their own rclpy node (the bag pipeline,
the node benchmark, the tests): :class:`Spinner` spins one existing node; :class:`SpunNode`
creates a context and a node of its own and spins it.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class Spinner:
    """An executor for one node, spun by a daemon thread until :meth:`stop`."""

    def __init__(self, node: Any, *, name: str = 'spin') -> None:
        self._executor = SingleThreadedExecutor(context=node.context)
        self._executor.add_node(node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True, name=name)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self._executor.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop spinning (waiting up to ``timeout`` s for the thread) and release the executor."""
        self._stop.set()
        self._thread.join(timeout=timeout)
        self._executor.shutdown()


class SpunNode:
    """A context of its own with one node spun by a background thread.

    End it with :meth:`close`, or use it as a context manager (``with SpunNode(name) as ros:``).

    Args:
        name: The node's name (also the thread's and the context's program name).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.context = Context()
        rclpy.init(args=[name], context=self.context)
        self.node = Node(name, context=self.context)
        self._spinner = Spinner(self.node, name=f'{name}_spin')

    def __enter__(self) -> 'SpunNode':
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop spinning, destroy the node and shut the context down."""
        self._spinner.stop(timeout=5.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` every ``interval`` s until it is true or ``timeout`` s passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
