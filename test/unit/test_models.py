"""Model registry and architectures.

:class:`TestEveryVariant` runs the same behaviour checks over every registered variant (as
torchvision's and segmentation_models_pytorch's model tests do), so a newly registered variant
is covered without a test of its own; the other tests check what is specific to one variant
(VainF key layout, ASPP rates, depth multiplier, torchvision state dicts)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.models import available_models, build_model, model_spec
from deeplab_ros.core.weights.checkpoint import load_model


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


def test_unknown_variant_is_explained() -> None:
    with pytest.raises(InvalidSettingError, match='Available: .*deeplabv3plus_mobilenetv2'):
        build_model('deeplabv3plus_resnet9000')


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


#: Odd and even input sizes (small: the whole class runs in seconds).
INPUT_SIZES = ((33, 47), (64, 64))
NUM_CLASSES = 5
CANDIDATE_STRIDES = (4, 8, 16, 32)
VARIANT_STRIDES = [(name, stride) for name in available_models()
                   for stride in model_spec(name).output_strides]


@pytest.fixture(scope='module')
def built_models() -> dict[tuple[str, int], torch.nn.Module]:
    """One model per (variant, output stride), built on first use for the module."""
    return {}


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with non-trivial normalisation statistics."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize('name,output_stride', VARIANT_STRIDES,
                         ids=[f'{name}-os{stride}' for name, stride in VARIANT_STRIDES])
class TestEveryVariant:
    """Each registered variant at each output stride it supports."""

    def model(self, built_models: dict, name: str, output_stride: int) -> torch.nn.Module:
        """The variant built with NUM_CLASSES classes (cached for the module)."""
        key = (name, output_stride)
        if key not in built_models:
            torch.manual_seed(0)
            built_models[key] = _randomised(build_model(
                name, num_classes=NUM_CLASSES, output_stride=output_stride))
        return built_models[key]

    @pytest.mark.parametrize('size', INPUT_SIZES, ids=['odd', 'even'])
    def test_logits_have_the_input_size_and_one_channel_per_class(
            self, built_models: dict, name: str, output_stride: int,
            size: tuple[int, int]) -> None:
        model = self.model(built_models, name, output_stride)
        with torch.inference_mode():
            logits = model(torch.randn(1, 3, *size))
        assert isinstance(logits, torch.Tensor), 'a plain tensor, never a dict'
        assert logits.shape == (1, NUM_CLASSES, *size)
        assert logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())

    def test_state_dict_round_trip_reproduces_the_outputs(
            self, built_models: dict, name: str, output_stride: int) -> None:
        model = self.model(built_models, name, output_stride)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        buffer.seek(0)
        with torch.device('meta'):  # no weights of its own: only the loaded state can match
            reloaded = build_model(name, num_classes=NUM_CLASSES, output_stride=output_stride)
        reloaded.load_state_dict(torch.load(buffer, weights_only=True), strict=True, assign=True)
        reloaded.eval()
        image = torch.randn(1, 3, *INPUT_SIZES[0])
        with torch.inference_mode():
            assert torch.equal(model(image), reloaded(image))

    def test_unsupported_output_stride_is_a_clear_error(
            self, name: str, output_stride: int) -> None:
        supported = model_spec(name).output_strides
        unsupported = next(s for s in CANDIDATE_STRIDES if s not in supported)
        choices = ' or '.join(str(stride) for stride in supported)
        expected = rf"output_stride {unsupported} not supported by '{name}' \(choose {choices}\)"
        with pytest.raises(InvalidSettingError, match=expected):
            build_model(name, num_classes=NUM_CLASSES, output_stride=unsupported)
