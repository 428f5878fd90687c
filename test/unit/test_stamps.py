"""Header stamps to nanoseconds and back."""

from types import SimpleNamespace

from std_msgs.msg import Header

from deeplab_ros.ros.stamps import split_ns, stamp_from_ns, stamp_ns


def test_nanoseconds_split_into_the_fields_of_a_time_and_back() -> None:
    ns = 1_700_000_000_250_000_001
    assert split_ns(ns) == (1_700_000_000, 250_000_001)
    assert split_ns(999_999_999) == (0, 999_999_999) and split_ns(10**9) == (1, 0)
    time = stamp_from_ns(ns)
    assert (time.sec, time.nanosec) == split_ns(ns)
    assert stamp_ns(Header(stamp=time)) == ns
    # Any header with stamp.sec and stamp.nanosec (rosbags messages too).
    sec, nanosec = split_ns(ns)
    assert stamp_ns(SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec))) == ns
