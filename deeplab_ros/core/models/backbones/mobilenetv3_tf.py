"""MobileNetV3-Large with DeepLab's segmentation tail, in Google DeepLab's TensorFlow layout.

The backbone of Google's Cityscapes MobileNetV3 release
(``deeplab_mnv3_large_cityscapes_trainfine``), read from its TFLite graph: MobileNetV3-Large
with DeepLab's segmentation tail (the last three blocks and the final 1x1 conv at half width:
336/480 expansions, 80 outputs, 480 final channels), batch norm folded into conv biases,
TensorFlow "SAME" padding (strided convs pad the TensorFlow way for every input size), ReLU or
hard-swish per block, squeeze-and-excite (global average -> 1x1 + ReLU -> 1x1 + hard sigmoid
-> scale) after the depthwise activation of the blocks that have it; output stride 32, no
atrous convs. The head on it is in :mod:`~deeplab_ros.core.models.lraspp_tf`.
"""

from __future__ import annotations

import torch
from torch import nn

from deeplab_ros.core.models.backbones.mobilenetv2 import (
    depthwise_conv_of, make_conv, make_divisible)

#: Per block: (kernel, expanded channels, output channels, squeeze-and-excite, activation,
#: stride) of MobileNetV3-Large with DeepLab's half-width segmentation tail.
MOBILENETV3_LARGE_SEGMENTATION: tuple[tuple[int, int, int, bool, str, int], ...] = (
    (3, 16, 16, False, 'relu', 1),
    (3, 64, 24, False, 'relu', 2),
    (3, 72, 24, False, 'relu', 1),
    (5, 72, 40, True, 'relu', 2),
    (5, 120, 40, True, 'relu', 1),
    (5, 120, 40, True, 'relu', 1),
    (3, 240, 80, False, 'hardswish', 2),
    (3, 200, 80, False, 'hardswish', 1),
    (3, 184, 80, False, 'hardswish', 1),
    (3, 184, 80, False, 'hardswish', 1),
    (3, 480, 112, True, 'hardswish', 1),
    (3, 672, 112, True, 'hardswish', 1),
    (5, 336, 80, True, 'hardswish', 2),
    (5, 480, 80, True, 'hardswish', 1),
    (5, 480, 80, True, 'hardswish', 1),
)
STEM_CHANNELS = 16
FINAL_CHANNELS = 480
#: Activation modules by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    'relu': nn.ReLU, 'relu6': nn.ReLU6, 'hardswish': nn.Hardswish, 'hardsigmoid': nn.Hardsigmoid}


def conv_activation(in_channels: int, out_channels: int, kernel_size: int, activation: str, *,
                    stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv with bias (batch norm folded), TensorFlow "SAME" padding, then ``activation``."""
    return nn.Sequential(
        make_conv(in_channels, out_channels, kernel_size, stride=stride, groups=groups,
                  bias=True, padding='tf_same'),
        ACTIVATIONS[activation]())


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: global average, 1x1 + ReLU, 1x1 + hard sigmoid, channel scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / 4, 8)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.relu = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel by its gate."""
        pooled = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.expand(self.relu(self.reduce(pooled))))


class MobileNetV3Block(nn.Module):
    """Inverted residual: 1x1 expansion, kxk depthwise, optional squeeze-excite, 1x1 linear."""

    def __init__(self, in_channels: int, kernel_size: int, expanded: int, out_channels: int,
                 squeeze_excite: bool, activation: str, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(conv_activation(in_channels, expanded, 1, activation))
        layers.append(conv_activation(expanded, expanded, kernel_size, activation,
                                      stride=stride, groups=expanded))
        #: ``self.conv[:depthwise_end]`` ends with the depthwise conv's activation.
        self.depthwise_end = len(layers)
        if squeeze_excite:
            layers.append(SqueezeExcite(expanded))
        layers.append(nn.Conv2d(expanded, out_channels, 1))
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (with the identity shortcut when shapes allow)."""
        return self.forward_with_depthwise(x)[0]

    def forward_with_depthwise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its depthwise activation (the stride-8 branch's tap)."""
        depthwise = self.conv[:self.depthwise_end](x)
        out = self.conv[self.depthwise_end:](depthwise)
        return (x + out if self.use_residual else out), depthwise

    @property
    def depthwise_conv(self) -> nn.Conv2d:
        """The depthwise conv, whose activation ``forward_with_depthwise`` also returns."""
        return depthwise_conv_of(self.conv, self.depthwise_end)


def mobilenetv3_large_features() -> nn.Sequential:
    """The backbone: stem (3x3 stride 2, hard-swish), the 15 blocks, final 1x1 conv."""
    layers: list[nn.Module] = [conv_activation(3, STEM_CHANNELS, 3, 'hardswish', stride=2)]
    channels = STEM_CHANNELS
    for kernel, expanded, out_channels, squeeze_excite, activation, stride in \
            MOBILENETV3_LARGE_SEGMENTATION:
        layers.append(MobileNetV3Block(channels, kernel, expanded, out_channels,
                                       squeeze_excite, activation, stride))
        channels = out_channels
    layers.append(conv_activation(channels, FINAL_CHANNELS, 1, 'hardswish'))
    return nn.Sequential(*layers)
