"""The ROS 2 toolchain the environment provides: upstream vision_msgs, launch, the ros2 CLI."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest

# Every message of vision_msgs 4.1.1 (the version ROS 2 Jazzy ships).
VISION_MSGS_4_1_1 = (
    'BoundingBox2D', 'BoundingBox2DArray', 'BoundingBox3D', 'BoundingBox3DArray',
    'Classification', 'Detection2D', 'Detection2DArray', 'Detection3D', 'Detection3DArray',
    'LabelInfo', 'ObjectHypothesis', 'ObjectHypothesisWithPose', 'Point2D', 'Pose2D',
    'VisionClass', 'VisionInfo')


@pytest.mark.parametrize('name', VISION_MSGS_4_1_1)
def test_every_upstream_vision_msgs_message_is_installed(name: str) -> None:
    import vision_msgs.msg  # noqa: PLC0415
    message_type = getattr(vision_msgs.msg, name)
    message_type()  # the type support library loads
    assert message_type.__module__.startswith('vision_msgs.msg.')


def test_vision_msgs_fields_match_the_upstream_definitions() -> None:
    from vision_msgs.msg import Detection2D, LabelInfo, ObjectHypothesis  # noqa: PLC0415
    assert ObjectHypothesis.get_fields_and_field_types() == {'class_id': 'string',
                                                             'score': 'double'}
    assert LabelInfo.get_fields_and_field_types() == {
        'header': 'std_msgs/Header', 'class_map': 'sequence<vision_msgs/VisionClass>',
        'threshold': 'float'}
    assert Detection2D.get_fields_and_field_types() == {
        'header': 'std_msgs/Header',
        'results': 'sequence<vision_msgs/ObjectHypothesisWithPose>',
        'bbox': 'vision_msgs/BoundingBox2D', 'id': 'string'}


def test_ros2_cli_lists_this_package_and_its_executables() -> None:
    ros2 = Path(sys.executable).with_name('ros2')
    assert ros2.is_file(), f'{ros2} missing: run make setup'
    result = subprocess.run([str(ros2), 'pkg', 'executables', 'deeplab_ros'],
                            capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert 'deeplab_ros segmentation_node' in result.stdout.splitlines()
