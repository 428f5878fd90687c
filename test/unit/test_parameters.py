"""The parameter table: its checks are the core's rules, its defaults and documented choices
pass them, and the parameter reference (docs/parameters.md) says which parameters are live
exactly as the table does."""

from __future__ import annotations

from pathlib import Path
import re

import pytest
from rclpy.parameter import Parameter

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.inference.device import resolve_device
from deeplab_ros.ros.parameters import LiveSettings, SPECS, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('spec', [spec for spec in SPECS if spec.check], ids=lambda s: s.name)
def test_every_default_passes_its_own_check(spec) -> None:
    assert validate(Parameter(spec.name, value=spec.default)) == ''


@pytest.mark.parametrize('name, good, bad', [
    ('device', 'cuda:1', 'gpu7'),
    ('backend', 'onnxruntime', 'tensorrt'),
    ('upsample', 'dense', 'bicubic'),
    ('input_size', 17, 16),
    ('input_transport', 'compressed', 'h264'),
    ('cameras', ['front', 'rear/left'], ['front', '2nd']),
])
def test_set_is_refused_with_the_core_rule_s_message(name: str, good: object,
                                                     bad: object) -> None:
    assert validate(Parameter(name, value=good)) == ''
    reason = validate(Parameter(name, value=bad))
    assert reason and (name in reason or 'camera' in reason)


def test_device_set_and_configure_apply_one_rule() -> None:
    """What ``ros2 param set device`` refuses, configure (resolve_device) refuses with the
    same message."""
    reason = validate(Parameter('device', value='gpu7'))
    with pytest.raises(ConfigurationError) as raised:
        resolve_device('gpu7')
    assert reason == str(raised.value)


def test_live_settings_start_from_the_table_defaults() -> None:
    live = {spec.name: spec.frozen_default() for spec in SPECS if spec.live}
    assert vars(LiveSettings()) == live


@pytest.mark.parametrize('spec', [spec for spec in SPECS if spec.choices],
                         ids=lambda s: s.name)
def test_documented_choices_are_exactly_what_the_check_accepts(spec) -> None:
    assert spec.check is not None and spec.default in spec.choices
    for choice in spec.choices:
        assert validate(Parameter(spec.name, value=choice)) == '', choice
    assert validate(Parameter(spec.name, value='no_such_choice'))


def _documented_parameter_kinds() -> dict[str, set[str]]:
    """Parameter names per 'applies' column value of docs/parameters.md's table."""
    text = (ROOT / 'docs' / 'parameters.md').read_text()
    kinds: dict[str, set[str]] = {'configure': set(), 'live': set()}
    for name, applies in re.findall(r'^\| `([a-z_]+)` \|(?:[^|]*\|){3} (configure|live) \|',
                                    text, flags=re.MULTILINE):
        kinds[applies].add(name)
    return kinds


def test_docs_list_every_parameter_as_live_or_read_at_configure_as_the_table_does() -> None:
    kinds = _documented_parameter_kinds()
    assert kinds['live'] == {spec.name for spec in SPECS if spec.live}
    assert kinds['configure'] == {spec.name for spec in SPECS if not spec.live}
