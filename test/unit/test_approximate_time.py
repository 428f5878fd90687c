"""The port of message_filters' ApproximateTime policy pairs messages as the C++ policy does.

Each case is worked through the C++ ``process()`` of ``approximate_time.hpp`` by hand (in the
comments), so the port the Nav2 layer test relies on is checked against the original's
behaviour: exact stamps, the maximum interval, the pivot's proof of optimality, and the
queue limit dropping the oldest message.
"""

from __future__ import annotations

from types import SimpleNamespace

from deeplab_ros.ros.stamps import split_ns
from support.approximate_time import ApproximateTimeSync

MS = 1_000_000


def _message(name: str, stamp_ms: int) -> SimpleNamespace:
    sec, nanosec = split_ns(stamp_ms * MS)
    return SimpleNamespace(name=name, header=SimpleNamespace(
        stamp=SimpleNamespace(sec=sec, nanosec=nanosec)))


def _sync(inputs: int, queue_size: int = 10, max_interval_ms: int = 100
          ) -> tuple[ApproximateTimeSync, list[tuple[str, ...]]]:
    emitted: list[tuple[str, ...]] = []
    sync = ApproximateTimeSync(inputs, queue_size, max_interval_ms * MS,
                               lambda *messages: emitted.append(tuple(m.name for m in messages)))
    return sync, emitted


def test_equal_stamps_are_emitted_as_soon_as_the_set_is_complete() -> None:
    sync, emitted = _sync(3)
    for index, stamp in enumerate((0, 100, 200)):
        # Any arrival order; the set goes out with its last message.
        sync.add(2, _message(f'cloud{stamp}', stamp))
        sync.add(0, _message(f'mask{stamp}', stamp))
        assert len(emitted) == index
        sync.add(1, _message(f'conf{stamp}', stamp))
        assert emitted[-1] == (f'mask{stamp}', f'conf{stamp}', f'cloud{stamp}')
    assert len(emitted) == 3


def test_a_set_wider_than_the_maximum_interval_is_never_emitted() -> None:
    sync, emitted = _sync(2, max_interval_ms=100)
    sync.add(0, _message('mask0', 0))
    sync.add(1, _message('cloud150', 150))  # span 150 ms > 100: mask0 is dropped
    assert emitted == []
    # mask160 + cloud150 is a candidate (pivot: the mask); a cloud up to 160 could still
    # make a better one, so it waits.
    sync.add(0, _message('mask160', 160))
    assert emitted == []
    # cloud200 is no better ((200 - 160) * 1.1 >= 160 - 150) and the start reaches the pivot.
    sync.add(1, _message('cloud200', 200))
    assert emitted == [('mask160', 'cloud150')]


def test_the_candidate_waits_until_no_better_set_can_come() -> None:
    # mask0 + cloud40 is a candidate (pivot: the cloud, the later one); mask0 moves to the
    # past and the virtual search cannot prove it optimal (a mask up to 40 ms could still
    # come). mask100 ends the search: (100 - 40) * 1.1 >= 40 - 0, and the start is the pivot.
    sync, emitted = _sync(2)
    sync.add(0, _message('mask0', 0))
    sync.add(1, _message('cloud40', 40))
    assert emitted == []
    sync.add(0, _message('mask100', 100))
    assert emitted == [('mask0', 'cloud40')]


def test_the_queue_limit_drops_the_oldest_and_the_best_set_wins() -> None:
    # Queue 2: mask0 is dropped when mask20 arrives. With cloud20, (mask10, cloud20) is the
    # first candidate; (mask20, cloud20) is better and provably optimal: it is emitted.
    sync, emitted = _sync(2, queue_size=2)
    for stamp in (0, 10, 20):
        sync.add(0, _message(f'mask{stamp}', stamp))
    sync.add(1, _message('cloud20', 20))
    assert emitted == [('mask20', 'cloud20')]
