"""``deeplab-ros-convert`` converts the user's files; pretrained models are deeplab-ros-models'."""

import pytest

from deeplab_ros.tools import convert


def test_help_names_the_models_command_and_every_label_set(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main(['--help'])
    assert raised.value.code == 0
    text = capsys.readouterr().out
    assert 'deeplab-ros-models' in text and "'ade20k32'" in text


@pytest.mark.parametrize('option', ['--list', '--all'])
def test_pretrained_listing_and_fetching_are_not_convert_options(option: str) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main([option])
    assert raised.value.code == 2
