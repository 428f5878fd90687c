"""Drive a lifecycle node over its services, from another node (like ``ros2 lifecycle set``)."""

from __future__ import annotations

from collections.abc import Callable
import threading
import time

from rclpy.node import Node


class LifecycleClient:
    """Drives a lifecycle node through ``<node>/change_state`` and ``<node>/get_state``."""

    TRANSITIONS = {'configure': 1, 'cleanup': 2, 'activate': 3, 'deactivate': 4,
                   'shutdown': 6}

    def __init__(self, node: Node, target: str,
                 alive: Callable[[], bool] | None = None) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState  # noqa: PLC0415

        self._node = node
        self._alive = alive or (lambda: True)
        self._change = node.create_client(ChangeState, f'{target}/change_state')
        self._get = node.create_client(GetState, f'{target}/get_state')
        self._change_type = ChangeState
        self._get_type = GetState
        self.target = target
        self._ready: set = set()

    def _call(self, client, request, timeout: float):
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.2):
            self._check_alive(client)
            if time.monotonic() > deadline:
                raise TimeoutError(f'{client.srv_name} did not appear within {timeout:g} s: '
                                   f'is the node {self.target} running?')
        if client not in self._ready:
            # "Service available" means the request path is matched; give discovery a moment
            # to match the reply path too, or the first response can be lost.
            time.sleep(0.5)
            self._ready.add(client)
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        while not done.wait(0.2):
            self._check_alive(client)
            if time.monotonic() > deadline:
                raise TimeoutError(f'{client.srv_name} did not answer within {timeout:g} s.')
        return future.result()

    def _check_alive(self, client) -> None:
        if not self._alive():
            raise RuntimeError(f'The node process exited while waiting for {client.srv_name}; '
                               'see its log for the cause.')

    def state(self, timeout: float = 10.0) -> str:
        """The node's current state label ('unconfigured', 'inactive', 'active', ...)."""
        return self._call(self._get, self._get_type.Request(), timeout).current_state.label

    def change(self, transition: str, timeout: float = 120.0) -> bool:
        """Request a transition by name; True when the node accepted it."""
        request = self._change_type.Request()
        if transition == 'shutdown':
            # Shutdown has one transition id per source state; the label works from any.
            request.transition.label = transition
        else:
            request.transition.id = self.TRANSITIONS[transition]
        return bool(self._call(self._change, request, timeout).success)

    def bring_up(self, timeout: float = 180.0) -> None:
        """Configure, then activate the target node, like launch's autostart.

        Raises:
            RuntimeError: A transition failed; the message names it and the node's state.
        """
        for transition in ('configure', 'activate'):
            if not self.change(transition, timeout):
                raise RuntimeError(f'{self.target} refused to {transition} (state '
                                   f'{self.state()}); see the node log for the cause.')

    def destroy(self) -> None:
        """Release the service clients."""
        self._node.destroy_client(self._change)
        self._node.destroy_client(self._get)
