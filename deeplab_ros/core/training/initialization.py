"""Weight initialisation for fine-tuning: pretrained MobileNetV2 backbone or a checkpoint.

The pretrained MobileNetV2 comes from Google's DeepLab TFLite release (converted by
:mod:`deeplab_ros.core.weights.pretrained`), where batch norm is already folded into the
convolution biases. The VainF layout used by ``deeplabv3plus_mobilenetv2`` keeps a BatchNorm2d
after every convolution; the transfer copies each convolution kernel and turns the BatchNorm
into an identity plus the folded bias (weight 1, bias b, running mean 0, running variance
1 - eps), so the transferred backbone computes the same features as the original.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.weights.checkpoint import CheckpointError, load_model, read_checkpoint

#: Pretrained DeepLab MobileNetV2 checkpoints by depth multiplier.
PRETRAINED_BY_DEPTH: dict[float, str] = {1.0: 'deeplabv3_mnv2_dm10_dequant',
                                         0.5: 'deeplabv3_mnv2_dm05_float'}

#: Variants ``--init backbone`` knows how to initialise.
BACKBONE_INIT_VARIANTS = ('deeplabv3plus_mobilenetv2', 'deeplabv3_mobilenetv2')

# Fewer matching tensors than this fraction means the checkpoint is of another architecture.
MIN_MATCHED_FRACTION = 0.5


def backbone_of(model: nn.Module) -> nn.Module:
    """Return ``model.backbone`` (every registered variant has one)."""
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f'{type(model).__name__} has no "backbone" submodule to initialise.')
    return backbone


def _conv_bn_pairs(module: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Convolutions in definition order, each with the BatchNorm2d that directly follows it."""
    layers = [item for item in module.modules()
              if isinstance(item, (nn.Conv2d, nn.BatchNorm2d))]
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    for position, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            following = layers[position + 1] if position + 1 < len(layers) else None
            norm = following if isinstance(following, nn.BatchNorm2d) else None
            pairs.append((layer, norm))
    return pairs


def _describe(conv: nn.Conv2d) -> str:
    return f'{tuple(conv.weight.shape)} groups={conv.groups}'


@torch.no_grad()
def transfer_folded_backbone(source: nn.Module, target: nn.Module) -> int:
    """Copy a folded-BN MobileNetV2 backbone (``source``) into a conv+BN one (``target``).

    Both are matched convolution by convolution in definition order; every kernel shape and
    group count must agree. Returns the number of convolutions copied.
    """
    source_pairs = _conv_bn_pairs(source)
    target_pairs = _conv_bn_pairs(target)
    if len(source_pairs) != len(target_pairs):
        raise CheckpointError(
            f'Cannot transfer the backbone: the pretrained MobileNetV2 has {len(source_pairs)} '
            f'convolutions, the model\'s backbone {len(target_pairs)}; the depth multiplier '
            'of the pretrained network must match the model\'s.')
    for number, ((src, src_norm), (dst, dst_norm)) in enumerate(zip(source_pairs, target_pairs)):
        if src.weight.shape != dst.weight.shape or src.groups != dst.groups:
            raise CheckpointError(
                f'Cannot transfer the backbone: convolution {number} is {_describe(src)} in the '
                f'pretrained network but {_describe(dst)} in the model.')
        if src_norm is not None:
            raise CheckpointError(
                'The pretrained backbone is expected to have batch norm folded into its '
                f'convolutions, but convolution {number} is followed by a BatchNorm2d.')
        dst.weight.copy_(src.weight)
        bias = src.bias if src.bias is not None else torch.zeros(src.out_channels)
        if dst_norm is None:
            if dst.bias is None:
                raise CheckpointError(
                    f'Convolution {number} of the model has neither a bias nor a batch norm '
                    'to take the pretrained bias.')
            dst.bias.copy_(bias)
            continue
        if dst.bias is not None:
            dst.bias.zero_()
        dst_norm.weight.fill_(1.0)
        dst_norm.bias.copy_(bias)
        if dst_norm.running_mean is None or dst_norm.running_var is None:
            raise CheckpointError(f'The batch norm after convolution {number} of the model '
                                  'keeps no running statistics to take the pretrained bias.')
        dst_norm.running_mean.zero_()
        dst_norm.running_var.fill_(1.0 - dst_norm.eps)
    return len(target_pairs)


def copy_matching(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[int, list[str]]:
    """Copy every tensor whose name and shape match; return (copied, names left as they were)."""
    own = model.state_dict()
    matched = {key: value for key, value in state_dict.items()
               if key in own and tuple(own[key].shape) == tuple(value.shape)}
    skipped = sorted(key for key in own if key not in matched)
    own.update({key: value.to(own[key].dtype) for key, value in matched.items()})
    model.load_state_dict(own)
    return len(matched), skipped


def _pretrained_mobilenetv2(depth_multiplier: float) -> tuple[nn.Module, str]:
    from deeplab_ros.core.weights.pretrained import pretrained_checkpoint

    name = PRETRAINED_BY_DEPTH.get(float(depth_multiplier))
    if name is None:
        raise InvalidSettingError(
            f'No pretrained MobileNetV2 with depth multiplier {depth_multiplier}; available: '
            f'{sorted(PRETRAINED_BY_DEPTH)}. Initialise with none or checkpoint:PATH instead.',
            setting='init')
    model, _ = load_model(pretrained_checkpoint(name))
    return model, name


def init_from_pretrained_backbone(model: nn.Module, variant: str,
                                  model_options: dict[str, Any]) -> str:
    """Initialise ``model``'s backbone from the converted DeepLab MobileNetV2 release."""
    if variant == 'deeplabv3plus_mobilenetv2':
        source, name = _pretrained_mobilenetv2(1.0)
        count = transfer_folded_backbone(backbone_of(source), backbone_of(model))
        return f'backbone: {count} convolutions from pretrained {name}'
    if variant == 'deeplabv3_mobilenetv2':
        depth = float(model_options.get('depth_multiplier', 1.0))
        source, name = _pretrained_mobilenetv2(depth)
        source_backbone = {f'backbone.{key}': value
                           for key, value in backbone_of(source).state_dict().items()}
        copied, _ = copy_matching(model, source_backbone)
        if copied < len(source_backbone):
            raise CheckpointError(
                f'Only {copied} of {len(source_backbone)} backbone tensors of {name} fit the '
                'model; the depth multiplier must match.')
        return f'backbone: {copied} tensors from pretrained {name}'
    raise InvalidSettingError(
        f'Initialising from a pretrained backbone supports {list(BACKBONE_INIT_VARIANTS)}; '
        f'{variant!r} has no pretrained backbone available offline. Initialise with none or '
        'checkpoint:PATH instead.', setting='init')


def init_from_checkpoint(model: nn.Module, path: str) -> str:
    """Copy every tensor of a checkpoint that fits (the classifier may differ in classes)."""
    state_dict, _ = read_checkpoint(path)
    copied, skipped = copy_matching(model, state_dict)
    total = len(model.state_dict())
    if copied < MIN_MATCHED_FRACTION * total:
        raise CheckpointError(
            f'Checkpoint {path} fits only {copied} of the model\'s {total} tensors: it holds '
            'another architecture. Pick the matching variant (and output stride).',
            setting='init')
    note = f' (kept fresh: {", ".join(skipped[:4])}{" ..." if len(skipped) > 4 else ""})'
    return f'checkpoint {path}: {copied}/{total} tensors' + (note if skipped else '')


def initialize_model(model: nn.Module, spec: str, *, variant: str,
                     model_options: dict[str, Any]) -> str:
    """Apply the initialisation ``spec`` to ``model``.

    ``spec`` is ``'backbone'``, ``'checkpoint:PATH'`` or ``'none'``.

    Returns:
        A description of the initialisation applied, for the training log.
    """
    spec = spec.strip()
    if spec in ('', 'none'):
        return 'random initialisation'
    if spec == 'backbone':
        return init_from_pretrained_backbone(model, variant, model_options)
    if spec.startswith('checkpoint:'):
        return init_from_checkpoint(model, spec[len('checkpoint:'):])
    raise InvalidSettingError(f'Unknown initialisation {spec!r}: use backbone, '
                              'checkpoint:PATH or none.', setting='init')
