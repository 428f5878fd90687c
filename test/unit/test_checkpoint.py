"""Checkpoint loading: every kind of wrong file gets an error that names the problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from deeplab_ros.core.models import build_model
from deeplab_ros.core.weights.checkpoint import (
    CheckpointError, CheckpointMetadata, load_model, read_checkpoint, save_checkpoint)

VARIANT = 'deeplabv3plus_mobilenetv2'


@pytest.fixture(scope='module')
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(VARIANT, num_classes=21).eval()


@pytest.fixture(scope='module')
def saved(model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'model.pt'
    return save_checkpoint(path, model, CheckpointMetadata(
        variant=VARIANT, num_classes=21, input_size=321, source='test'))


def test_metadata_makes_the_path_alone_enough(saved: Path, model: torch.nn.Module) -> None:
    loaded, metadata = load_model(saved)
    assert metadata.variant == VARIANT and metadata.input_size == 321
    assert metadata.label_set().class_names[15] == 'person'  # VOC by default for 21 classes
    x = torch.randn(1, 3, 65, 65)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_metadata_round_trips_and_ignores_unknown_keys() -> None:
    metadata = CheckpointMetadata(variant='v', num_classes=3, class_names=('a', 'b', 'c'),
                                  palette=((1, 2, 3), (4, 5, 6), (7, 8, 9)),
                                  model_options={'depth_multiplier': 0.5})
    data = metadata.to_dict() | {'added_in_a_later_version': 1}
    assert CheckpointMetadata.from_dict(data) == metadata


@pytest.mark.parametrize('wrap', ['plain', 'model_state', 'state_dict', 'module_prefix'])
def test_common_layouts_load(tmp_path: Path, model: torch.nn.Module, wrap: str) -> None:
    state = model.state_dict()
    content = {'plain': state, 'model_state': {'model_state': state},
               'state_dict': {'state_dict': state},
               'module_prefix': {f'module.{k}': v for k, v in state.items()}}[wrap]
    torch.save(content, tmp_path / 'x.pth')
    loaded, metadata = load_model(tmp_path / 'x.pth', variant=VARIANT)
    assert metadata.num_classes == 21
    assert torch.equal(loaded.state_dict()['classifier.classifier.3.bias'],
                       state['classifier.classifier.3.bias'])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match='not found'):
        load_model(tmp_path / 'absent.pt', variant=VARIANT)


def test_truncated_file(tmp_path: Path, saved: Path) -> None:
    path = tmp_path / 'truncated.pt'
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(CheckpointError, match='truncated, corrupt or not a torch file'):
        load_model(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / 'noise.pt'
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match='not a readable PyTorch checkpoint'):
        read_checkpoint(path)


class _Payload:
    """Unpickling this would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_pickle_carrying_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / 'code_was_executed'
    path = tmp_path / 'evil.pt'
    torch.save({'model_state': {'w': torch.zeros(1)}, 'payload': _Payload(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match='Refused to load .*not plain tensors'):
        load_model(path, variant=VARIANT)
    assert not marker.exists(), 'loading must never execute code from the file'


def test_wrong_number_of_classes(tmp_path: Path) -> None:
    other = build_model(VARIANT, num_classes=19)
    torch.save({'model_state': other.state_dict()}, tmp_path / 'city.pth')
    with pytest.raises(CheckpointError, match='checkpoint has 19 classes, model expects 21'):
        load_model(tmp_path / 'city.pth', variant=VARIANT, num_classes=21)
    _, metadata = load_model(tmp_path / 'city.pth', variant=VARIANT)
    assert metadata.num_classes == 19  # inferred when not given


def test_wrong_variant_is_named(tmp_path: Path) -> None:
    other = build_model('lraspp_mobilenetv3_large')
    torch.save(other.state_dict(), tmp_path / 'lraspp.pth')
    with pytest.raises(CheckpointError) as raised:
        load_model(tmp_path / 'lraspp.pth', variant=VARIANT)
    message = str(raised.value)
    assert 'missing keys' in message and 'unexpected keys' in message
    assert "'lraspp_mobilenetv3_large'" in message


def test_shape_mismatch_is_listed(tmp_path: Path, model: torch.nn.Module) -> None:
    state = dict(model.state_dict())
    state['classifier.project.0.weight'] = torch.zeros(48, 24, 3, 3)
    torch.save(state, tmp_path / 'bad_shape.pth')
    with pytest.raises(CheckpointError, match=r'classifier.project.0.weight: checkpoint '
                                              r'\(48, 24, 3, 3\) vs model \(48, 24, 1, 1\)'):
        load_model(tmp_path / 'bad_shape.pth', variant=VARIANT)


def test_metadata_and_arguments_must_agree(saved: Path) -> None:
    with pytest.raises(CheckpointError, match='num_classes=21 checkpoint'):
        load_model(saved, num_classes=19)


def test_no_metadata_and_no_variant_suggests_one(tmp_path: Path, model) -> None:
    torch.save(model.state_dict(), tmp_path / 'anon.pth')
    with pytest.raises(CheckpointError, match="name the model variant.*deeplabv3plus"):
        load_model(tmp_path / 'anon.pth')
