"""DeepLabV3 with DeepLab's "MobileNetV2 head", the architecture of Google's TFLite releases.

On MobileNetV2 (the PASCAL VOC files) and on MobileNet-EdgeTPU (the Coral Cityscapes file,
backbone in :mod:`~deeplab_ros.core.models.backbones.mobilenet_edgetpu`, head 128 channels
wide: "slim"; its logits are resized the same way). What the three PASCAL VOC TFLite files
contain (read from their graphs):

- backbone: MobileNetV2 without the final 1x1 conv; batch norm folded into conv biases;
  ReLU6 after the stem, expansion and depthwise convs, linear projections; residual adds.
  Depth multiplier 0.5 keeps DeepLab's unrounded channel counts (stem 16; 8, 12, 16, 32, 48,
  80, 160), 1.0 is the usual 32 ... 320. All convs use TensorFlow's "SAME" padding
  (``padding='tf_same'``), which equals symmetric padding for inputs of the form 8k+1 (257,
  321, 513, ...).
- output stride 8 (float 257 model): the strides of the 4th and 6th stages become dilation 2
  and 4; output stride 16 (the quantized models): only the 6th stage's, dilation 2.
- head: image pooling (global average -> 1x1 conv to 256 + ReLU -> bilinear back) and a
  1x1 conv to 256 + ReLU, concatenated in that order, a 1x1 projection to 256 + ReLU and a
  1x1 conv to the logits (with bias).
- logits (at the output stride) are resized to the input size with bilinear,
  ``align_corners=True`` (``forward``, :mod:`~deeplab_ros.core.models.logits`); the quantized
  files then end in ARG_MAX.
"""

from __future__ import annotations

import torch
from torch import nn

from deeplab_ros.core.models.activation_quantization import (
    ActivationTable, quantize_activations)
from deeplab_ros.core.models.backbones.mobilenet_edgetpu import mobilenet_edgetpu_features
from deeplab_ros.core.models.backbones.mobilenetv2 import (
    feature_channels, initialise_weights, mobilenetv2_features)
from deeplab_ros.core.models.logits import LogitsNetwork
from deeplab_ros.core.models.registry import register_model

DEPTH_MULTIPLIERS = (0.5, 1.0)
#: ASPP width of DeepLab's "slim" MobileNet-EdgeTPU configuration.
SLIM_HEAD_CHANNELS = 128


def conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv with bias + ReLU (a DeepLab head layer with batch norm folded)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))


class MobileNetV2Head(nn.Module):
    """DeepLab's MobileNetV2 head: image pooling + 1x1 branch, projection, logits.

    With ``num_classes=None`` there is no logits layer and the head returns the projected
    256-channel features (what DeepLabV3+'s decoder takes).
    """

    def __init__(self, in_channels: int, num_classes: int | None, channels: int = 256
                 ) -> None:
        super().__init__()
        self.image_pooling = conv_relu(in_channels, channels)
        self.aspp0 = conv_relu(in_channels, channels)
        self.concat_projection = conv_relu(2 * channels, channels)
        self.logits = nn.Conv2d(channels, num_classes, 1) if num_classes else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (or projected features) at the features' resolution."""
        pooled = self.image_pooling(features.mean(dim=(2, 3), keepdim=True))
        pooled = pooled.expand(-1, -1, features.shape[2], features.shape[3])
        merged = torch.cat([pooled, self.aspp0(features)], dim=1)
        projected = self.concat_projection(merged)
        return projected if self.logits is None else self.logits(projected)


class DeepLabV3MobileNetV2(LogitsNetwork):
    """MobileNetV2 backbone (folded batch norm) + :class:`MobileNetV2Head`."""

    logits_resize = 'align_corners'

    def __init__(self, *, num_classes: int, output_stride: int, depth_multiplier: float
                 ) -> None:
        super().__init__()
        round_nearest = 8 if depth_multiplier >= 1.0 else 1
        self.backbone = mobilenetv2_features(
            width_mult=depth_multiplier, round_nearest=round_nearest,
            output_stride=output_stride, include_last_conv=False, batch_norm=False,
            padding='tf_same')
        self.head = MobileNetV2Head(feature_channels(self.backbone, len(self.backbone) - 1),
                                    num_classes)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the output stride."""
        return self.head(self.backbone(x))


@register_model('deeplabv3_mobilenetv2', output_strides=(8, 16),
                description="DeepLabV3 MobileNetV2, DeepLab's MobileNetV2 head (TFLite ports)")
def deeplabv3_mobilenetv2(*, num_classes: int = 21, output_stride: int = 16,
                          depth_multiplier: float = 1.0) -> DeepLabV3MobileNetV2:
    """Build DeepLabV3 MobileNetV2 at depth multiplier 0.5 or 1.0."""
    if float(depth_multiplier) not in DEPTH_MULTIPLIERS:
        raise ValueError(f'depth_multiplier must be one of {DEPTH_MULTIPLIERS}, '
                         f'got {depth_multiplier}')
    model = DeepLabV3MobileNetV2(num_classes=num_classes, output_stride=output_stride,
                                 depth_multiplier=float(depth_multiplier))
    initialise_weights(model)
    return model


class DeepLabV3MobileNetEdgeTPU(LogitsNetwork):
    """MobileNet-EdgeTPU backbone + DeepLab's MobileNetV2 head (128 channels when "slim")."""

    logits_resize = 'align_corners'
    channels_last_logits = True

    def __init__(self, *, num_classes: int, output_stride: int, depth_multiplier: float,
                 head_channels: int) -> None:
        super().__init__()
        self.backbone = mobilenet_edgetpu_features(depth_multiplier=depth_multiplier,
                                                   output_stride=output_stride)
        self.head = MobileNetV2Head(feature_channels(self.backbone, len(self.backbone) - 1),
                                    num_classes, channels=head_channels)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the output stride."""
        return self.head(self.backbone(x))


@register_model('deeplabv3_mobilenet_edgetpu', output_strides=(8, 16),
                description='DeepLabV3 MobileNet-EdgeTPU, DeepLab\'s MobileNetV2-style head '
                            '(Coral TFLite port)')
def deeplabv3_mobilenet_edgetpu(*, num_classes: int = 19, output_stride: int = 16,
                                depth_multiplier: float = 0.75,
                                head_channels: int = SLIM_HEAD_CHANNELS,
                                activation_quantization: ActivationTable | None = None
                                ) -> DeepLabV3MobileNetEdgeTPU:
    """Build DeepLabV3 on MobileNet-EdgeTPU (Google's Cityscapes model: dm 0.75, head 128).

    ``activation_quantization`` emulates a uint8 graph's activations, see
    :mod:`~deeplab_ros.core.models.activation_quantization`.
    """
    model = DeepLabV3MobileNetEdgeTPU(num_classes=num_classes, output_stride=output_stride,
                                      depth_multiplier=float(depth_multiplier),
                                      head_channels=int(head_channels))
    initialise_weights(model)
    return quantize_activations(model, activation_quantization)
