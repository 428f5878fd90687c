"""Files written atomically: the old file or the whole new one, never a part of one."""

from pathlib import Path

import pytest
import torch

from deeplab_ros.core.files import atomic_write
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, read_checkpoint, \
    save_checkpoint


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / 'sub' / 'out.bin'
    with atomic_write(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_bytes(b'new')
    assert target.read_bytes() == b'new'
    assert target.stat().st_mode & 0o777 == 0o644
    assert [path.name for path in target.parent.iterdir()] == ['out.bin']


def test_a_failure_leaves_the_old_file_and_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with pytest.raises(RuntimeError, match='disk full'):
        with atomic_write(target) as temporary:
            temporary.write_bytes(b'half')
            raise RuntimeError('disk full')
    assert target.read_bytes() == b'old'
    assert [path.name for path in tmp_path.iterdir()] == ['out.bin']


def test_a_failed_checkpoint_save_keeps_the_old_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / 'model.pt'
    model = torch.nn.Conv2d(3, 2, 1)
    save_checkpoint(path, model, CheckpointMetadata(variant='old', num_classes=2))

    def failing_save(payload, target) -> None:
        Path(target).write_bytes(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(path, model, CheckpointMetadata(variant='new', num_classes=2))
    monkeypatch.undo()
    assert read_checkpoint(path)[1].variant == 'old'
    assert [item.name for item in tmp_path.iterdir()] == ['model.pt']
