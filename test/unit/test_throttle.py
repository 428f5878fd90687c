"""KeyedThrottle: one message per key and period, on a fake clock."""

from deeplab_ros.streaming.throttle import KeyedThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_message_of_a_key_goes_out_then_waits_a_period() -> None:
    clock = FakeClock()
    throttle = KeyedThrottle(5.0, clock)
    assert throttle.allow('a')
    assert not throttle.allow('a')
    clock.now += 4.99
    assert not throttle.allow('a')
    clock.now += 0.01
    assert throttle.allow('a')
    assert not throttle.allow('a')


def test_keys_are_throttled_independently() -> None:
    clock = FakeClock()
    throttle = KeyedThrottle(5.0, clock)
    assert throttle.allow(('topic', 'image', ''))
    assert throttle.allow(('topic', 'depth image', 'size'))
    assert throttle.allow(('topic', 'depth image', 'data'))
    assert not throttle.allow(('topic', 'image', ''))


def test_a_suppressed_message_does_not_extend_the_period() -> None:
    clock = FakeClock()
    throttle = KeyedThrottle(1.0, clock)
    assert throttle.allow('k')
    clock.now += 0.9
    assert not throttle.allow('k')
    clock.now += 0.1
    assert throttle.allow('k')


def test_zero_period_lets_everything_through() -> None:
    throttle = KeyedThrottle(0.0, FakeClock())
    assert throttle.allow('k') and throttle.allow('k')
