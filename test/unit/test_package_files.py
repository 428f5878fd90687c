"""Shipped files are found from a source checkout, through the ament index (a colcon install
or a ROS distribution), or under the Python prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplab_ros import package_files

ROOT = Path(__file__).resolve().parents[2]


def test_a_source_checkout_uses_its_own_config() -> None:
    assert package_files.config_file('segment.yaml') == ROOT / 'config' / 'segment.yaml'


def _indexed_prefix(prefix: Path) -> Path:
    """A prefix laid out like a colcon install of the package: ament index marker + share."""
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'deeplab_ros'
    marker.parent.mkdir(parents=True)
    marker.touch()
    config = prefix / 'share' / 'deeplab_ros' / 'config' / 'segment.yaml'
    config.parent.mkdir(parents=True)
    config.write_text('/**:\n  ros__parameters: {}\n')
    return config


def test_outside_a_checkout_the_ament_index_names_the_share_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip('ament_index_python', reason='ament_index_python is a ROS package')
    installed = _indexed_prefix(tmp_path / 'install' / 'deeplab_ros')
    monkeypatch.setattr(package_files, '_SOURCE_ROOT', tmp_path / 'not_a_checkout')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path / 'install' / 'deeplab_ros'))
    assert package_files.config_file('segment.yaml') == installed


def test_a_missing_file_says_where_it_was_looked_for(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_files, '_SOURCE_ROOT', tmp_path)
    with pytest.raises(FileNotFoundError, match=rf'No config/nothing.yaml: looked for '
                                                rf'{tmp_path}/config/nothing.yaml'):
        package_files.config_file('nothing.yaml')
