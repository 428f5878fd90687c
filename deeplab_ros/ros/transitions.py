"""The guard every lifecycle transition callback of the node runs under."""

from __future__ import annotations

import functools
from typing import Any, Callable

from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn

#: A lifecycle transition callback of the node.
TransitionCallback = Callable[[Any, LifecycleState], TransitionCallbackReturn]


def guarded_transition(name: str, *, release_on_failure: bool = False,
                       result_on_error: TransitionCallbackReturn =
                       TransitionCallbackReturn.FAILURE
                       ) -> Callable[[TransitionCallback], TransitionCallback]:
    """Guard a lifecycle transition callback.

    rclpy turns an exception raised in a transition into ERROR without logging it; a guarded
    callback logs the cause instead and returns ``result_on_error`` (FAILURE: the node stays
    in its state), releasing the model and endpoints first (the node's ``_release``) when
    ``release_on_failure``.
    """
    def wrap(method: TransitionCallback) -> TransitionCallback:
        @functools.wraps(method)
        def guarded(node: Any, state: LifecycleState) -> TransitionCallbackReturn:
            try:
                return method(node, state)
            except Exception as error:  # noqa: BLE001 - rclpy would swallow it silently
                node.get_logger().error(f'{name} failed: {type(error).__name__}: {error}')
                if release_on_failure:
                    node._release()  # noqa: SLF001 - the node's own teardown
                return result_on_error
        return guarded
    return wrap
