"""Class names in parameters are checked against the model's classes.

A name the model does not have is refused, naming it and its close matches: configure fails
for the values it reads, and ``set_parameters`` (what ``ros2 param set`` calls) refuses a live
change, leaving the parameter and the node's behaviour as they were.
"""

from __future__ import annotations

import pytest

from deeplab_ros.core.labels import ade20k_labels
from support.ros import node_under_test

#: The default pretrained model (ADE20K) at a small input size.
SMALL = {'input_size': 129}


@pytest.mark.parametrize('name, value, expected', [
    ('points_classes', ['person', 'persn'],
     "(parameter points_classes): points_classes: the model has no class 'persn' (close "
     "matches: 'person'"),
    ('detections_ignore_classes', ['0', '151'],
     "(parameter detections_ignore_classes): detections_ignore_classes: the model has no "
     "class '151'; its 151 classes have ids 0-150"),
], ids=['misspelt_name', 'id_out_of_range'])
def test_configure_fails_naming_the_class_and_its_close_matches(
        name: str, value: list[str], expected: str, capfd: pytest.CaptureFixture) -> None:
    with node_under_test({**SMALL, name: value}) as (node, tester):
        capfd.readouterr()
        assert tester.lifecycle.change('configure') is False
        assert tester.lifecycle.state() == 'unconfigured'
        logged = capfd.readouterr().err
        failures = [line for line in logged.splitlines() if 'configure failed' in line]
        assert len(failures) == 1 and expected in failures[0], logged[-2000:]
        assert 'Traceback' not in logged


def test_a_live_change_naming_an_unknown_class_is_refused_and_changes_nothing() -> None:
    floor, wall = (ade20k_labels().class_names.index(name) for name in ('floor', 'wall'))
    with node_under_test({**SMALL, 'detections_ignore_classes': ['0', 'wall']}) as (
            node, tester):
        assert tester.lifecycle.change('configure') is True
        settings = node.node._outputs.spatial  # noqa: SLF001 - the resolved ids in use
        assert list(settings.settings.ignore_classes) == [0, wall]

        refused = tester.set_parameters({'detections_ignore_classes': ['0', 'flor']})[0]
        assert not refused.successful
        assert "has no class 'flor' (close matches: 'floor'" in refused.reason
        assert node.node.get_parameter('detections_ignore_classes').value == ['0', 'wall']
        assert list(settings.settings.ignore_classes) == [0, wall]

        refused = tester.set_parameters({'points_classes': ['sofa', 'sfa']})[0]
        assert not refused.successful and "'sfa' (close matches: 'sofa'" in refused.reason
        assert node.node.get_parameter('points_classes').value == []

        accepted = tester.set_parameters({'detections_ignore_classes': ['0', 'Floor']})[0]
        assert accepted.successful, accepted.reason
        assert list(settings.settings.ignore_classes) == [0, floor]
