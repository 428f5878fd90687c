"""MobileNetV2 feature extractor with DeepLab's atrous (dilated) output strides.

The layout follows torchvision / VainF DeepLabV3Plus-Pytorch, so their state-dict keys apply:
index 0 is the stem ``ConvBNReLU`` (``Sequential(conv, bn, relu6)``), 1..17 are
:class:`InvertedResidual` blocks with a ``.conv`` Sequential, 18 is the last 1x1 conv.

Output stride: once the running stride reaches ``output_stride``, later strides become 1 and
the dilation grows by the skipped stride instead. The first block of such a stage keeps the
previous dilation, the later ones use the new one (the convention of DeepLab's TensorFlow
MobileNetV2 and of VainF's port).

Padding (:data:`PADDING_MODES`), which decides the numbers at the borders:

- ``'symmetric'``: each 3x3 conv pads ``dilation`` zeros on every side.
- ``'tf_same'``: TensorFlow's "SAME" (Google's exported graphs): stride-1 convs pad
  symmetrically, stride-2 convs pad ``max(k - s, 0)`` (even input) or ``k - 1`` (odd input) in
  total, the smaller half first. Equals ``'symmetric'`` for inputs of the form 8k+1.
- ``'vainf'``: VainF DeepLabV3Plus-Pytorch's ``fixed_padding``: the stem conv has no padding
  at all, and each inverted-residual block zero-pads its *input* (before the 1x1 expansion) by
  ``dilation`` on every side while its depthwise conv pads nothing, so the expanded tensor's
  border holds ``ReLU6(BN(conv(0)))`` rather than zeros.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
import torch.nn.functional as F

#: (expand ratio t, output channels c, repeats n, first stride s) per stage.
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)

#: Accepted values of the ``padding`` argument of :func:`mobilenetv2_features`.
PADDING_MODES = ('symmetric', 'tf_same', 'vainf')


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round channel counts as MobileNet does (``divisor=1`` keeps them unrounded)."""
    if divisor <= 1:
        return max(int(value + 0.5), 1)
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class SamePaddingConv2d(nn.Conv2d):
    """A strided ``nn.Conv2d`` padded as TensorFlow's "SAME" for the size of each input.

    Same parameters (and state-dict keys) as ``nn.Conv2d``; its own ``padding`` stays 0.
    Symmetric padding (odd input sizes) is the convolution's own; asymmetric padding is a zero
    ``F.pad`` with an explicit value, which ONNX Runtime folds into the convolution's
    (asymmetric) ``pads``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad the bottom/right-heavy TensorFlow way, then convolve."""
        (top, bottom), (left, right) = (
            same_padding(size, kernel, stride, dilation) for size, kernel, stride, dilation in
            zip(spatial_size(x), self.kernel_size, self.stride, self.dilation))
        if (top, left) == (bottom, right):
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation,
                            self.groups)
        # A constant pads tensor and an explicit zero value: what ONNX Runtime's Pad fusion
        # needs to fold the Pad into the Conv (an empty value input stops it).
        return super().forward(F.pad(x, (left, right, top, bottom), value=0.0))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) zero padding of TensorFlow's "SAME" along one axis of ``size``."""
    effective = (kernel - 1) * dilation + 1
    remainder = size % stride
    total = max(effective - (stride if remainder == 0 else remainder), 0)
    return total // 2, total - total // 2


def spatial_size(x: torch.Tensor) -> tuple[int, int]:
    """Height and width of ``x`` as Python integers, also while tracing an export.

    An ONNX export has a fixed spatial size (only the batch is dynamic), so padding decided
    from it is a constant of the graph rather than shape arithmetic computed at every run.
    """
    if not torch.jit.is_tracing():
        return int(x.shape[-2]), int(x.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return int(x.shape[-2]), int(x.shape[-1])


def fixed_padding(kernel_size: int, dilation: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that keeps a stride-1 dilated conv's size."""
    total = (kernel_size - 1) * dilation
    return (total // 2, total - total // 2, total // 2, total - total // 2)


def make_conv(in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
              dilation: int = 1, groups: int = 1, bias: bool = False,
              padding: str = 'symmetric') -> nn.Conv2d:
    """A conv padded per ``padding`` (:data:`PADDING_MODES`; ``'valid'`` pads nothing)."""
    if padding == 'tf_same' and stride > 1:
        return SamePaddingConv2d(in_channels, out_channels, kernel_size, stride, 0,
                                 dilation=dilation, groups=groups, bias=bias)
    pad = 0 if padding in ('valid', 'vainf') else (kernel_size - 1) // 2 * dilation
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, dilation=dilation,
                     groups=groups, bias=bias)


class ConvBNReLU(nn.Sequential):
    """Conv + BatchNorm + ReLU6 (padding per ``padding``, see :data:`PADDING_MODES`).

    With ``batch_norm=False`` the conv carries a bias instead (batch norm folded into it, as
    in exported inference graphs) and there is no BatchNorm layer. ``activation`` replaces
    ReLU6 (MobileNet-EdgeTPU uses ``nn.ReLU``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1, groups: int = 1,
                 batch_norm: bool = True, padding: str = 'symmetric',
                 activation: type[nn.Module] = nn.ReLU6) -> None:
        conv = make_conv(in_channels, out_channels, kernel_size, stride=stride,
                         dilation=dilation, groups=groups, bias=not batch_norm,
                         padding=padding)
        norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
        super().__init__(conv, *norm, activation(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise (strided or dilated), 1x1 linear project.

    ``kernel_size`` (the depthwise conv's), ``activation`` (instead of ReLU6) and
    ``residual=False`` (no shortcut even where shapes allow) serve MobileNet-EdgeTPU's blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dilation: int,
                 expand_ratio: int, batch_norm: bool = True, padding: str = 'symmetric',
                 *, kernel_size: int = 3, activation: type[nn.Module] = nn.ReLU6,
                 residual: bool = True) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_residual = residual and stride == 1 and in_channels == out_channels
        #: VainF pads the block's input (before the expansion), not the depthwise conv's.
        self.input_padding = fixed_padding(3, dilation) if padding == 'vainf' else None
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_channels, hidden, kernel_size=1, batch_norm=batch_norm,
                                     activation=activation))
        layers.extend([
            ConvBNReLU(hidden, hidden, kernel_size, stride=stride, dilation=dilation,
                       groups=hidden, batch_norm=batch_norm, padding=padding,
                       activation=activation),
            nn.Conv2d(hidden, out_channels, 1, bias=not batch_norm),
        ])
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        self.conv = nn.Sequential(*layers)
        #: ``self.conv[:depthwise_end]`` ends with the depthwise conv's activation.
        self.depthwise_end = 2 if expand_ratio != 1 else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block (with the identity shortcut when shapes allow)."""
        out = self.conv(self._pad_input(x))
        return x + out if self.use_residual else out

    def _pad_input(self, x: torch.Tensor) -> torch.Tensor:
        """The block's input, padded as VainF pads it (unchanged in the other modes).

        The explicit zero value lets ONNX Runtime fold the Pad into the next convolution.
        """
        return x if self.input_padding is None else F.pad(x, self.input_padding, value=0.0)

    def forward_with_depthwise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its depthwise conv's activation (a decoder's tap)."""
        depthwise = self.conv[:self.depthwise_end](self._pad_input(x))
        out = self.conv[self.depthwise_end:](depthwise)
        return (x + out if self.use_residual else out), depthwise

    @property
    def depthwise_conv(self) -> nn.Conv2d:
        """The depthwise conv, whose activation ``forward_with_depthwise`` also returns."""
        return depthwise_conv_of(self.conv, self.depthwise_end)


def depthwise_conv_of(layers: nn.Sequential, depthwise_end: int) -> nn.Conv2d:
    """The conv of the (conv, ..., activation) stage that ends ``layers[:depthwise_end]``."""
    stage = layers[depthwise_end - 1]
    conv = stage[0] if isinstance(stage, nn.Sequential) else None
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f'stage {depthwise_end - 1} of the block does not start with a conv')
    return conv


def mobilenetv2_features(*, width_mult: float = 1.0, round_nearest: int = 8,
                         output_stride: int = 16, include_last_conv: bool = True,
                         batch_norm: bool = True, padding: str = 'symmetric',
                         output_channels_rounded: bool = True) -> nn.Sequential:
    """Build the MobileNetV2 ``features`` Sequential.

    Args:
        width_mult: Depth multiplier (1.0, 0.5, ...).
        round_nearest: Channel rounding; 8 as torchvision, 1 for DeepLab's unrounded dm0.5.
        output_stride: 8, 16 or 32; strides past it become dilations.
        include_last_conv: Append the final 1x1 conv to 1280 x width channels (index 18).
        batch_norm: Conv + BatchNorm (training layout) or conv with bias (folded layout).
        padding: One of :data:`PADDING_MODES` (see the module docstring).
        output_channels_rounded: Round block widths with ``round_nearest``; VainF uses the
            unrounded ``int(c * width_mult)`` (the same at width 1.0).
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f'output_stride must be 8, 16 or 32, got {output_stride}')
    if padding not in PADDING_MODES:
        raise ValueError(f'padding must be one of {PADDING_MODES}, got {padding!r}')
    input_channels = make_divisible(32 * width_mult, round_nearest)
    last_channels = make_divisible(1280 * max(1.0, width_mult), round_nearest)
    stem = ConvBNReLU(3, input_channels, stride=2, batch_norm=batch_norm, padding=padding)
    features: list[nn.Module] = [stem]
    current_stride, dilation, previous_dilation = 2, 1, 1
    for expand, channels, repeats, stride in INVERTED_RESIDUAL_SETTING:
        out_channels = (make_divisible(channels * width_mult, round_nearest)
                        if output_channels_rounded else int(channels * width_mult))
        previous_dilation = dilation
        if current_stride == output_stride:
            dilation *= stride
            stride = 1
        else:
            current_stride *= stride
        for index in range(repeats):
            if index == 0:
                block = InvertedResidual(input_channels, out_channels, stride,
                                         previous_dilation, expand, batch_norm, padding)
            else:
                block = InvertedResidual(input_channels, out_channels, 1, dilation, expand,
                                         batch_norm, padding)
            features.append(block)
            input_channels = out_channels
    if include_last_conv:
        features.append(ConvBNReLU(input_channels, last_channels, kernel_size=1,
                                   batch_norm=batch_norm))
    return nn.Sequential(*features)


def feature_channels(features: nn.Sequential, index: int) -> int:
    """Output channels of ``features[index]``."""
    block = features[index]
    convs = [module for module in block.modules() if isinstance(module, nn.Conv2d)]
    return convs[-1].out_channels


def initialise_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit BatchNorm, small normal linear layers (as torchvision)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode='fan_out')
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)
