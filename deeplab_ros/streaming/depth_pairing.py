"""When to wait for a frame's depth image, and how long.

A frame is paired with its depth image after inference. A depth image stamped like the frame
may still be in transit then, so the pairing waits a little for it, unless the depth stream
has gone quiet (a stopped depth camera must not slow every frame down by the wait).
"""

from __future__ import annotations

from typing import TypeVar

from deeplab_ros.streaming.stamp_matcher import StampMatcher

Item = TypeVar('Item')

#: Longest wait (s) after inference for a frame's depth image that has not arrived yet.
DEPTH_WAIT_S = 0.2
#: A depth stream silent for this long (s) is quiet: frames no longer wait for it.
QUIET_AFTER_S = 1.0


class DepthPairing:
    """Pair a frame stamp with the nearest depth image, waiting for a late one while it flows.

    Args:
        wait_s: Longest wait for a depth image not received yet.
        quiet_after_s: Without a depth image for this long, do not wait at all.
    """

    def __init__(self, wait_s: float = DEPTH_WAIT_S, quiet_after_s: float = QUIET_AFTER_S
                 ) -> None:
        self.wait_s = wait_s
        self.quiet_after_s = quiet_after_s

    def wait_for(self, silent_for: float | None) -> float:
        """Seconds to wait given how long the depth stream has been silent (None: never sent).

        A stream that never sent anything may be starting up: it is waited for.
        """
        return self.wait_s if silent_for is None or silent_for < self.quiet_after_s else 0.0

    def match(self, depth: StampMatcher[Item], stamp_ns: int, tolerance_ns: int
              ) -> Item | None:
        """The depth item nearest ``stamp_ns`` within ``tolerance_ns`` (None: none)."""
        return depth.match(stamp_ns, tolerance_ns, wait_s=self.wait_for(depth.silent_for()))
