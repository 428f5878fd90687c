"""Model registry and architectures: VainF key compatibility, any resolution, both strides."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deeplab_ros.core.checkpoint import load_model
from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.models import available_models, build_model


def _reference_keys(shared: Path) -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (shared / 'weights/vainf_deeplabv3plus_mobilenet_state_keys.txt').read_text(
            ).splitlines():
        if line.strip():
            name, shape = line.split(' ', 1)
            keys[name] = tuple(int(v) for v in shape.strip('()').replace(' ', '').split(',')
                               if v)
    return keys


def test_registry_lists_every_variant() -> None:
    assert set(available_models()) >= {
        'deeplabv3plus_mobilenetv2', 'deeplabv3_mobilenetv2', 'deeplabv3_mobilenetv3_large',
        'lraspp_mobilenetv3_large', 'deeplabv3_resnet50', 'deeplabv3_resnet101'}


def test_unknown_variant_and_stride_are_explained() -> None:
    with pytest.raises(InvalidSettingError, match='Available: .*deeplabv3plus_mobilenetv2'):
        build_model('deeplabv3plus_resnet9000')
    with pytest.raises(InvalidSettingError, match=r'output_stride 32 .*\(choose 8 or 16\)'):
        build_model('deeplabv3plus_mobilenetv2', output_stride=32)


@pytest.mark.parametrize('output_stride', [8, 16])
def test_deeplabv3plus_state_dict_equals_vainf(shared: Path, output_stride: int) -> None:
    model = build_model('deeplabv3plus_mobilenetv2', output_stride=output_stride)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == _reference_keys(shared)
    assert list(ours) == list(_reference_keys(shared)), 'same key order as VainF'


def test_aspp_rates_follow_the_output_stride() -> None:
    for stride, rates in ((16, (6, 12, 18)), (8, (12, 24, 36))):
        aspp = build_model('deeplabv3plus_mobilenetv2', output_stride=stride).classifier.aspp
        assert tuple(aspp.convs[i][0].dilation[0] for i in (1, 2, 3)) == rates


@pytest.mark.parametrize('size', [(97, 131), (256, 320), (33, 33)])
@pytest.mark.parametrize('output_stride', [8, 16])
def test_deeplabv3plus_any_resolution(size: tuple[int, int], output_stride: int) -> None:
    model = build_model('deeplabv3plus_mobilenetv2', num_classes=5,
                        output_stride=output_stride).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)


@pytest.mark.parametrize('depth_multiplier', [0.5, 1.0])
@pytest.mark.parametrize('output_stride', [8, 16])
def test_deeplabv3_mobilenetv2_variants(depth_multiplier: float, output_stride: int) -> None:
    model = build_model('deeplabv3_mobilenetv2', output_stride=output_stride,
                        depth_multiplier=depth_multiplier).eval()
    stem = model.backbone[0][0].out_channels
    assert stem == (16 if depth_multiplier == 0.5 else 32)
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 65, 80)).shape == (1, 21, 65, 80)


def test_vainf_checkpoint_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model('deeplabv3plus_mobilenetv2', output_stride=16).eval()
    for module in model.modules():  # non-trivial BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path / 'best_deeplabv3plus_mobilenet_voc_os16.pth'
    torch.save({'model_state': model.state_dict(), 'cur_itrs': 30000, 'best_score': 0.7},
               path)
    loaded, metadata = load_model(path, variant='deeplabv3plus_mobilenetv2')
    assert metadata.num_classes == 21 and metadata.output_stride == 16
    x = torch.randn(1, 3, 129, 161)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize('name', ['deeplabv3_mobilenetv3_large', 'lraspp_mobilenetv3_large'])
def test_torchvision_variants_load_torchvision_state_dicts(tmp_path: Path, name: str) -> None:
    from torchvision.models import segmentation
    factory = {'deeplabv3_mobilenetv3_large': segmentation.deeplabv3_mobilenet_v3_large,
               'lraspp_mobilenetv3_large': segmentation.lraspp_mobilenet_v3_large}[name]
    reference = factory(weights=None, weights_backbone=None, num_classes=21).eval()
    path = tmp_path / 'tv.pth'
    torch.save(reference.state_dict(), path)
    model, _ = load_model(path, variant=name)
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        assert torch.allclose(model(x), reference(x)['out'])


def test_resnet_variants_build_without_downloading() -> None:
    model = build_model('deeplabv3_resnet50', output_stride=8, num_classes=3).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert 'deeplabv3_resnet101' in available_models()
