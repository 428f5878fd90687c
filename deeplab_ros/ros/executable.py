"""The ``segmentation_node`` executable: the node in a process of its own.

Process concerns only: SIGINT and SIGTERM end the spin and tear the node down, a second
SIGINT cannot abort the teardown, and (when the launch file asks) the process receives SIGINT
when its parent exits (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from deeplab_ros.ros.segmentation_node import SegmentationNode, WorkerStuckError


def _ignore_further_interrupts() -> None:
    """Ignore further SIGINTs once shutting down, so a second one cannot abort the teardown.

    Ctrl-C in a terminal under ``ros2 launch`` reaches the node twice (from the terminal and
    from launch).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


#: Set (to 1) by the launch file: the node shuts down cleanly when its parent process exits.
STOP_WITH_PARENT_ENV = 'DEEPLAB_ROS_STOP_WITH_PARENT'


def _stop_with_parent() -> None:
    """Linux: receive SIGINT when the parent process exits (PR_SET_PDEATHSIG).

    ``ros2 launch`` terminated by SIGTERM does not stop its processes (upstream launch logs
    "using SIGTERM can result in orphaned processes"); with this the node still shuts down
    cleanly instead of being left behind.
    """
    if os.environ.get(STOP_WITH_PARENT_ENV) != '1' or not sys.platform.startswith('linux'):
        return
    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT), 0, 0, 0)
    if os.getppid() != parent:  # the parent exited before the request took effect
        os.kill(os.getpid(), signal.SIGINT)


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``segmentation_node`` executable; exits 0 on SIGINT/SIGTERM."""
    rclpy.init(args=args if args is not None else sys.argv)
    _stop_with_parent()
    node = SegmentationNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _ignore_further_interrupts()
        executor.remove_node(node)
        try:
            node.destroy_node()
        except WorkerStuckError:
            # Logged. Destroying the context under the running worker would race it: leave
            # it to the process exit.
            return 1
        rclpy.try_shutdown()
        _ignore_further_interrupts()  # rclpy's shutdown restored the previous handler
    return 0


if __name__ == '__main__':
    sys.exit(main())
