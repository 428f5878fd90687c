"""The newest-frame scheduler on a fake clock: pacing to target_rate, newest-wins replacement
reported by offer, several streams, a pause (deactivate/activate) and the blocking form."""

from __future__ import annotations

import threading

import pytest

from deeplab_ros.streaming.frame_scheduler import NewestFrameScheduler


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingScheduler(NewestFrameScheduler):
    """Counts the offers that report a replaced frame (what the node counts as skipped)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.replaced = 0

    def offer(self, stream, frame) -> bool:
        replaced = super().offer(stream, frame)
        self.replaced += int(replaced)
        return replaced


def simulate(scheduler: NewestFrameScheduler, clock: FakeClock, *, camera_hz: float,
             seconds: float, inference_s: float = 0.0, wake_latency_s: float = 0.0,
             stream: str = 'camera') -> list[tuple[float, int]]:
    """Frames at ``camera_hz`` into an idle-when-possible consumer; (take time, frame index).

    The consumer sleeps until the next frame or the next due time (waking ``wake_latency_s``
    late, as a real thread does), and is busy ``inference_s`` after each batch.
    """
    start = clock.now
    arrivals = [start + i / camera_hz for i in range(int(seconds * camera_hz) + 1)]
    taken: list[tuple[float, int]] = []
    next_arrival = 0
    busy_until = start
    while next_arrival < len(arrivals) or scheduler.seconds_until_due() is not None:
        while next_arrival < len(arrivals) and arrivals[next_arrival] <= clock.now:
            scheduler.offer(stream, next_arrival)
            next_arrival += 1
        if clock.now >= busy_until:
            batch = scheduler.take_ready()
            if batch:
                taken += [(clock.now, frame) for _, frame in batch]
                busy_until = clock.now + inference_s
                continue
        wake = [arrivals[next_arrival]] if next_arrival < len(arrivals) else []
        due = scheduler.seconds_until_due()
        if due is not None:
            wake.append(max(busy_until, clock.now + due + wake_latency_s))
        if not wake:
            break
        clock.now = max(min(wake), clock.now)
        if clock.now > start + seconds + 1.0:
            break
    return taken


def test_rate_zero_takes_every_frame_the_consumer_is_free_for() -> None:
    clock = FakeClock()
    scheduler = CountingScheduler(0.0, clock=clock)
    taken = simulate(scheduler, clock, camera_hz=30.0, seconds=2.0)
    assert [frame for _, frame in taken] == list(range(61))
    assert scheduler.replaced == 0


def test_two_hz_from_thirty_hz_takes_one_frame_every_half_second() -> None:
    clock = FakeClock()
    scheduler = CountingScheduler(2.0, clock=clock)
    taken = simulate(scheduler, clock, camera_hz=30.0, seconds=10.0)
    times = [t - 100.0 for t, _ in taken]
    assert times == pytest.approx([0.5 * i for i in range(21)])
    assert [frame for _, frame in taken] == [15 * i for i in range(21)]
    assert scheduler.replaced == 300 - 20  # every frame offered but not taken was replaced


def test_pacing_does_not_drift_with_late_wake_ups_or_unaligned_frames() -> None:
    clock = FakeClock()
    scheduler = NewestFrameScheduler(2.0, clock=clock)
    # 7 Hz frames never fall on the 0.5 s grid and the consumer wakes 10 ms late each time:
    # taking each frame "one period after the previous take" would run at 7/4 = 1.75 Hz.
    taken = simulate(scheduler, clock, camera_hz=7.0, seconds=60.0, wake_latency_s=0.01)
    times = [t - 100.0 for t, _ in taken]
    assert len(times) == 121  # 2 Hz over 60 s, first frame at 0
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 0.5 + 1 / 7 + 0.011 and min(gaps) > 0.5 - 1 / 7 - 0.011
    assert times[-1] == pytest.approx(60.0, abs=1 / 7 + 0.011)  # no accumulated lag


def test_inference_slower_than_the_period_restarts_the_grid_instead_of_bursting() -> None:
    clock = FakeClock()
    scheduler = NewestFrameScheduler(2.0, clock=clock)
    taken = simulate(scheduler, clock, camera_hz=30.0, seconds=6.0, inference_s=0.8)
    gaps = [b - a for (a, _), (b, _) in zip(taken, taken[1:])]
    assert gaps and all(gap == pytest.approx(0.8, abs=1e-6) for gap in gaps)


def test_newest_frame_wins_and_each_replaced_frame_is_counted() -> None:
    clock = FakeClock()
    scheduler = NewestFrameScheduler(0.0, clock=clock)
    assert scheduler.offer('a', 1) is False
    assert scheduler.offer('a', 2) is True
    assert scheduler.offer('a', 3) is True
    assert scheduler.take_ready() == [('a', 3)]
    assert scheduler.take_ready() == []
    assert scheduler.seconds_until_due() is None


def test_streams_are_paced_separately_and_taken_together_when_due() -> None:
    clock = FakeClock()
    scheduler = NewestFrameScheduler(1.0, clock=clock)
    scheduler.offer('left', 'L0')
    scheduler.offer('right', 'R0')
    assert scheduler.take_ready() == [('left', 'L0'), ('right', 'R0')]
    clock.now += 0.5
    scheduler.offer('left', 'L1')
    assert scheduler.take_ready() == []
    assert scheduler.seconds_until_due() == pytest.approx(0.5)
    clock.now += 0.5
    scheduler.offer('right', 'R1')
    assert scheduler.take_ready() == [('left', 'L1'), ('right', 'R1')]
    scheduler.offer('third', 'T0')  # a stream never taken is due at once
    assert scheduler.take_ready() == [('third', 'T0')]


def test_target_rate_is_read_at_every_decision() -> None:
    clock = FakeClock()
    rate = {'hz': 1.0}
    scheduler = NewestFrameScheduler(lambda: rate['hz'], clock=clock)
    scheduler.offer('a', 0)
    assert scheduler.take_ready() == [('a', 0)]
    clock.now += 0.1
    scheduler.offer('a', 1)
    assert scheduler.take_ready() == []
    rate['hz'] = 0.0
    assert scheduler.take_ready() == [('a', 1)]


def test_after_a_pause_waiting_frames_are_gone_and_the_pacing_is_kept() -> None:
    """Deactivate clears the waiting frames; activate again within a period still waits for
    the due time; after a period or more the first new frame goes at once."""
    clock = FakeClock()
    scheduler = NewestFrameScheduler(2.0, clock=clock)
    scheduler.offer('a', 0)
    assert scheduler.take_ready() == [('a', 0)]
    clock.now += 0.1
    scheduler.offer('a', 1)
    scheduler.clear()  # deactivate
    assert scheduler.seconds_until_due() is None and scheduler.take_ready() == []
    # activated again 0.1 s after the last take; the cleared frame was not replaced by this one
    assert scheduler.offer('a', 2) is False
    assert scheduler.take_ready() == []
    clock.now += 0.4
    assert scheduler.take_ready() == [('a', 2)]
    clock.now += 5.0  # a long pause: the first frame after it is not held back
    scheduler.offer('a', 3)
    assert scheduler.take_ready() == [('a', 3)]
    clock.now += 0.25
    scheduler.offer('a', 4)
    assert scheduler.take_ready() == []  # paced from that frame on


def test_reset_forgets_pacing() -> None:
    clock = FakeClock()
    scheduler = NewestFrameScheduler(0.5, clock=clock)
    scheduler.offer('a', 0)
    scheduler.take_ready()
    scheduler.offer('a', 1)
    scheduler.reset()  # cleanup, configure: new cameras
    assert scheduler.seconds_until_due() is None
    scheduler.offer('a', 2)
    assert scheduler.take_ready() == [('a', 2)]


def test_next_batch_waits_for_a_frame_and_returns_none_once_stopped() -> None:
    scheduler: NewestFrameScheduler[str, int] = NewestFrameScheduler(0.0)
    scheduler.start()
    results: list = []
    consumer = threading.Thread(target=lambda: results.append(scheduler.next_batch()))
    consumer.start()
    scheduler.offer('a', 7)
    consumer.join(timeout=5.0)
    assert results == [[('a', 7)]]
    consumer = threading.Thread(target=lambda: results.append(scheduler.next_batch()))
    consumer.start()
    scheduler.stop()
    consumer.join(timeout=5.0)
    assert not consumer.is_alive() and results[-1] is None
    assert not scheduler.running
