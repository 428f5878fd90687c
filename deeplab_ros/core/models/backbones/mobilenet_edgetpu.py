"""MobileNet-EdgeTPU, the backbone of Google's Coral Cityscapes DeepLabV3 model.

What ``deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite`` contains (read from its graph,
op by op; the block table is TF-slim's ``V3_EDGETPU``):

- backbone: a 3x3 stride-2 stem, then 22 blocks. The first ten are *fused* inverted
  bottlenecks: a full (dense) 3x3 conv expands the channels (and carries the stride), a 1x1
  conv projects them back linearly, there is no depthwise conv; the first block has
  expansion 1 and is only the projection. The other twelve are MobileNetV2 inverted
  residuals (1x1 expansion, 3x3 or 5x5 depthwise, linear 1x1 projection); block 13 has no
  shortcut although its shapes would allow one. A final 1x1 conv to 1280 channels (not
  scaled by the depth multiplier). ReLU everywhere (not ReLU6), batch norm folded into conv
  biases, TensorFlow "SAME" padding. Channel counts are the table's times the depth multiplier
  (0.75 in the file), rounded to multiples of 8: stem 24; 16, 24, 40, 72, 120, 144.
- output stride 16 (the file): the last stage's stride becomes dilation 2 (its first block
  keeps dilation 1); output stride 8 also turns the stride of the 96-channel stage into
  dilation 2, as for MobileNetV2 (the weights do not depend on it).

The head on it is DeepLab's MobileNetV2 head, see
:class:`~deeplab_ros.core.models.deeplabv3_tf.DeepLabV3MobileNetEdgeTPU`.
"""

from __future__ import annotations

import torch
from torch import nn

from deeplab_ros.core.models.backbones.mobilenetv2 import (
    ConvBNReLU, InvertedResidual, make_divisible)

#: Per block: (fused, kernel, stride, expansion, output channels at depth 1.0, shortcut).
EDGETPU_BLOCKS: tuple[tuple[bool, int, int, int, int, bool], ...] = (
    (True, 3, 1, 1, 16, True),
    (True, 3, 2, 8, 32, True), *[(True, 3, 1, 4, 32, True)] * 3,
    (True, 3, 2, 8, 48, True), *[(True, 3, 1, 4, 48, True)] * 3,
    (False, 3, 2, 8, 96, True), *[(False, 3, 1, 4, 96, True)] * 3,
    (False, 3, 1, 8, 96, False), *[(False, 3, 1, 4, 96, True)] * 3,
    (False, 5, 2, 8, 160, True), *[(False, 5, 1, 4, 160, True)] * 3,
    (False, 3, 1, 8, 192, True),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class FusedInvertedResidual(nn.Module):
    """Fused inverted bottleneck: dense kxk expansion conv + ReLU, linear 1x1 projection.

    Without expansion (the expanded width would not exceed the input's) only the projection
    remains. Biases carry the folded batch norm; TensorFlow "SAME" padding.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int,
                 dilation: int, expansion: int, residual: bool) -> None:
        super().__init__()
        hidden = make_divisible(in_channels * expansion, 8)
        layers: list[nn.Module] = []
        if hidden > in_channels:
            layers.append(ConvBNReLU(in_channels, hidden, kernel_size, stride=stride,
                                     dilation=dilation, batch_norm=False, padding='tf_same',
                                     activation=nn.ReLU))
        elif stride != 1:
            raise ValueError('a fused block without expansion cannot be strided')
        else:
            hidden = in_channels
        layers.append(nn.Conv2d(hidden, out_channels, 1))
        self.conv = nn.Sequential(*layers)
        self.use_residual = residual and stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (with the identity shortcut when it has one)."""
        out = self.conv(x)
        return x + out if self.use_residual else out


def mobilenet_edgetpu_features(*, depth_multiplier: float = 0.75, output_stride: int = 16
                               ) -> nn.Sequential:
    """MobileNet-EdgeTPU up to its 1280-channel conv, folded batch norm (see module doc).

    Index 0 is the stem, 1..22 the blocks, 23 the final 1x1 conv. Strides past
    ``output_stride`` (8, 16 or 32) become dilations.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride}')
    if depth_multiplier <= 0:
        raise ValueError(f'depth_multiplier must be positive, got {depth_multiplier}')
    channels = make_divisible(STEM_CHANNELS * depth_multiplier, 8)
    features: list[nn.Module] = [ConvBNReLU(3, channels, stride=2, batch_norm=False,
                                            padding='tf_same', activation=nn.ReLU)]
    current_stride, dilation = 2, 1
    for fused, kernel, stride, expansion, width, residual in EDGETPU_BLOCKS:
        out_channels = make_divisible(width * depth_multiplier, 8)
        block_dilation = dilation  # a stage's first block keeps the previous dilation
        if stride > 1 and current_stride == output_stride:
            dilation *= stride
            stride = 1
        else:
            current_stride *= stride
        if fused:
            block: nn.Module = FusedInvertedResidual(
                channels, out_channels, kernel_size=kernel, stride=stride,
                dilation=block_dilation, expansion=expansion, residual=residual)
        else:
            block = InvertedResidual(channels, out_channels, stride, block_dilation,
                                     expansion, batch_norm=False, padding='tf_same',
                                     kernel_size=kernel, activation=nn.ReLU, residual=residual)
        features.append(block)
        channels = out_channels
    last = make_divisible(LAST_CHANNELS * max(1.0, depth_multiplier), 8)
    features.append(ConvBNReLU(channels, last, kernel_size=1, batch_norm=False,
                               activation=nn.ReLU))
    return nn.Sequential(*features)
