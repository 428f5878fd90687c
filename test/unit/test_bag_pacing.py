"""Paced playback's order: a frame's depth and camera_info go out before the frame."""

from __future__ import annotations

from deeplab_ros.bagtools.info import BagRecord
from deeplab_ros.bagtools.pipeline import companions_first

IMAGE = '/camera/image_raw/compressed'


def _record(topic: str, timestamp_ns: int) -> BagRecord:
    return BagRecord(topic=topic, msgtype='', timestamp_ns=timestamp_ns, data=b'')


def test_images_go_after_the_messages_recorded_at_their_time_and_nothing_else_moves() -> None:
    records = [_record(IMAGE, 0), _record('/depth', 0), _record('/info', 0),
               _record('/info', 5), _record(IMAGE, 10), _record('/depth', 10),
               _record('/imu', 12), _record(IMAGE, 20)]
    ordered = [(r.topic, r.timestamp_ns) for r in companions_first(records, IMAGE)]
    assert ordered == [('/depth', 0), ('/info', 0), (IMAGE, 0), ('/info', 5),
                       ('/depth', 10), (IMAGE, 10), ('/imu', 12), (IMAGE, 20)]
    assert list(companions_first([], IMAGE)) == []
