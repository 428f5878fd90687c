"""DepthPairing: wait for a late depth image while the depth stream flows, not once quiet."""

import time

from deeplab_ros.streaming.depth_pairing import DepthPairing, DEPTH_WAIT_S, QUIET_AFTER_S
from deeplab_ros.streaming.stamp_matcher import StampMatcher


def test_waits_while_the_stream_flows_or_has_not_started() -> None:
    pairing = DepthPairing()
    assert pairing.wait_for(None) == DEPTH_WAIT_S
    assert pairing.wait_for(0.0) == DEPTH_WAIT_S
    assert pairing.wait_for(QUIET_AFTER_S - 0.01) == DEPTH_WAIT_S


def test_a_quiet_stream_is_not_waited_for() -> None:
    pairing = DepthPairing(wait_s=0.5, quiet_after_s=2.0)
    assert pairing.wait_for(2.0) == 0.0
    assert pairing.wait_for(60.0) == 0.0
    assert pairing.wait_for(1.99) == 0.5


def test_match_returns_the_nearest_item_within_tolerance() -> None:
    matcher: StampMatcher[str] = StampMatcher(4)
    matcher.add(100, 'a')
    matcher.add(200, 'b')
    pairing = DepthPairing(wait_s=10.0)
    # An item at or after the stamp has arrived: no wait.
    started = time.monotonic()
    assert pairing.match(matcher, 190, 20) == 'b'
    assert pairing.match(matcher, 150, 10) is None
    assert time.monotonic() - started < 5.0


def test_match_does_not_wait_on_a_quiet_stream() -> None:
    matcher: StampMatcher[str] = StampMatcher(4)
    matcher.add(100, 'a')
    pairing = DepthPairing(wait_s=30.0, quiet_after_s=0.0)  # anything is quiet
    started = time.monotonic()
    assert pairing.match(matcher, 500, 1000) == 'a'
    assert time.monotonic() - started < 5.0
