"""DeepLabV3+ with a MobileNetV2 backbone in Google DeepLab's TensorFlow layout.

The architecture of Google's ADE20K MobileNetV2 DeepLabV3+ releases (read from their TFLite
graphs), which differs from VainF's DeepLabV3+ (:mod:`.deeplabv3plus`):

- backbone: MobileNetV2 1.0 without the final 1x1 conv, batch norm folded into conv biases,
  TensorFlow "SAME" padding; strides past the output stride become dilations (8 or 16);
- encoder head: DeepLab's MobileNetV2 head (image pooling + 1x1 branch, no atrous branches,
  projection to 256), see :class:`~.deeplabv3_tf.MobileNetV2Head`;
- decoder at stride 4: the *depthwise activation* (144 channels) of the second stride-4
  block projected to 48 (1x1 + ReLU), concatenated **after** the upsampled 256-channel encoder
  output, then two separable convs (depthwise 3x3 + ReLU, pointwise 1x1 + ReLU) to 256 and a
  1x1 conv to the logits;
- every resize bilinear in the graph's convention (``resize``: ``'align_corners'`` for the TF
  Hub export, ``'tf_legacy'`` for the MLPerf uint8 model), logits (stride 4) resized to the
  input size by ``forward`` (:mod:`~deeplab_ros.core.models.logits`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from deeplab_ros.core.models.activation_quantization import (
    ActivationTable, quantize_activations)
from deeplab_ros.core.models.backbones.mobilenetv2 import (
    feature_channels, initialise_weights, InvertedResidual, mobilenetv2_features)
from deeplab_ros.core.models.deeplabv3_tf import conv_relu, MobileNetV2Head
from deeplab_ros.core.models.logits import LogitsNetwork
from deeplab_ros.core.models.registry import register_model
from deeplab_ros.core.models.resize import resize_bilinear, RESIZE_MODES

#: Index of the backbone block whose depthwise activation feeds the decoder (stride 4).
LOW_LEVEL_BLOCK = 3


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 + ReLU, then pointwise 1x1 + ReLU (biases: batch norm folded)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(inplace=True),
        )


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLab's decoder: low-level projection, concat, two separable convs, logits."""

    def __init__(self, low_level_channels: int, encoder_channels: int, num_classes: int,
                 channels: int = 256, projection_channels: int = 48) -> None:
        super().__init__()
        self.feature_projection = conv_relu(low_level_channels, projection_channels)
        self.decoder_conv0 = SeparableConv(encoder_channels + projection_channels, channels)
        self.decoder_conv1 = SeparableConv(channels, channels)
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, low_level: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        """Logits at the low-level features' resolution (``encoded`` already resized)."""
        merged = torch.cat([encoded, self.feature_projection(low_level)], dim=1)
        return self.logits(self.decoder_conv1(self.decoder_conv0(merged)))


class DeepLabV3PlusMobileNetV2TF(LogitsNetwork):
    """MobileNetV2 (folded batch norm) + MobileNetV2 head + DeepLabV3+ decoder."""

    channels_last_logits = True

    def __init__(self, *, num_classes: int, output_stride: int, resize: str) -> None:
        super().__init__()
        if resize not in RESIZE_MODES:
            raise ValueError(f'resize must be one of {RESIZE_MODES}, got {resize!r}')
        self.logits_resize = resize  # every resize of the graph, the logits' included
        self.backbone = mobilenetv2_features(
            output_stride=output_stride, include_last_conv=False, batch_norm=False,
            padding='tf_same')
        tap = self.backbone[LOW_LEVEL_BLOCK]
        assert isinstance(tap, InvertedResidual)
        low_level_channels = tap.depthwise_conv.out_channels
        self.head = MobileNetV2Head(feature_channels(self.backbone, len(self.backbone) - 1),
                                    None)
        self.decoder = DeepLabV3PlusDecoder(low_level_channels, 256, num_classes)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the decoder's resolution (stride 4)."""
        features = self.backbone[:LOW_LEVEL_BLOCK](x)
        tap = cast(InvertedResidual, self.backbone[LOW_LEVEL_BLOCK])
        features, low_level = tap.forward_with_depthwise(features)
        encoded = self.head(self.backbone[LOW_LEVEL_BLOCK + 1:](features))
        encoded = resize_bilinear(encoded, low_level.shape[-2:], self.logits_resize)
        return self.decoder(low_level, encoded)


@register_model('deeplabv3plus_mobilenetv2_tf', output_strides=(8, 16),
                description="DeepLabV3+ MobileNetV2, Google DeepLab's layout (MobileNetV2 "
                            'head, separable-conv decoder; TFLite ports)')
def deeplabv3plus_mobilenetv2_tf(*, num_classes: int = 151, output_stride: int = 8,
                                 resize: str = 'align_corners',
                                 activation_quantization: ActivationTable | None = None
                                 ) -> DeepLabV3PlusMobileNetV2TF:
    """Build Google's DeepLabV3+ MobileNetV2 (``resize`` as the source graph resizes).

    ``activation_quantization`` emulates a uint8 graph's activations, see
    :mod:`~deeplab_ros.core.models.activation_quantization`.
    """
    model = DeepLabV3PlusMobileNetV2TF(num_classes=num_classes, output_stride=output_stride,
                                       resize=resize)
    initialise_weights(model)
    return quantize_activations(model, activation_quantization)
