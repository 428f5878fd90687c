"""DeepLabV3+ with a MobileNetV2 backbone, layout-compatible with VainF DeepLabV3Plus-Pytorch.

State-dict keys and shapes equal VainF's ``deeplabv3plus_mobilenet`` (``backbone.low_level_
features.*``, ``backbone.high_level_features.*``, ``classifier.project.*``,
``classifier.aspp.*``, ``classifier.classifier.*``), so its checkpoints
(``torch.load(f)['model_state']``) load unchanged and give the same outputs: the backbone
pads the way VainF's does (no padding in the stem, each block's input zero-padded before the
expansion, see :mod:`~deeplab_ros.core.models.backbones.mobilenetv2`), the ASPP pooling
branch and both resizes are bilinear with ``align_corners=False``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from deeplab_ros.core.models.backbones.mobilenetv2 import (
    feature_channels, initialise_weights, mobilenetv2_features)
from deeplab_ros.core.models.logits import LogitsNetwork
from deeplab_ros.core.models.registry import register_model

ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}


class ASPPConv(nn.Sequential):
    """3x3 atrous conv + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class ASPPPooling(nn.Sequential):
    """Image-level pooling branch: global average, 1x1 conv, BN, ReLU, upsample back."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool, transform and broadcast back to the input's spatial size."""
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode='bilinear',
                             align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3 and image pooling, projected."""

    def __init__(self, in_channels: int, rates: tuple[int, int, int],
                 out_channels: int = 256) -> None:
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                          nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)),
            *(ASPPConv(in_channels, out_channels, rate) for rate in rates),
            ASPPPooling(in_channels, out_channels),
        ])
        self.project = nn.Sequential(
            nn.Conv2d(5 * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run every branch on ``x``, concatenate, project."""
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHeadV3Plus(nn.Module):
    """Decoder: ASPP on the high-level features, fused with projected low-level features."""

    def __init__(self, in_channels: int, low_level_channels: int, num_classes: int,
                 rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.Conv2d(low_level_channels, 48, 1, bias=False),
            nn.BatchNorm2d(48),
            nn.ReLU(inplace=True),
        )
        self.aspp = ASPP(in_channels, rates)
        self.classifier = nn.Sequential(
            nn.Conv2d(48 + 256, 256, 3, padding=1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, num_classes, 1),
        )

    def forward(self, low_level: torch.Tensor, high_level: torch.Tensor) -> torch.Tensor:
        """Logits at the low-level features' resolution (stride 4)."""
        low = self.project(low_level)
        high = F.interpolate(self.aspp(high_level), size=low.shape[-2:], mode='bilinear',
                             align_corners=False)
        return self.classifier(torch.cat([low, high], dim=1))


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 split after stage 2 into low-level (stride 4) and high-level features."""

    def __init__(self, output_stride: int, width_mult: float = 1.0) -> None:
        super().__init__()
        features = mobilenetv2_features(width_mult=width_mult, output_stride=output_stride,
                                        padding='vainf', output_channels_rounded=False)
        # Slicing keeps the original indices in the keys (high_level_features.4 ... .17).
        self.low_level_features = features[0:4]
        self.high_level_features = features[4:-1]
        self.low_level_channels = feature_channels(features, 3)
        self.high_level_channels = feature_channels(features, len(features) - 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (low-level, high-level) feature maps."""
        low = self.low_level_features(x)
        return low, self.high_level_features(low)


class DeepLabV3Plus(LogitsNetwork):
    """DeepLabV3+ segmentation network: logits at stride 4, resized to the input (half-pixel)."""

    logits_resize = 'half_pixel'

    def __init__(self, backbone: MobileNetV2Backbone, classifier: DeepLabHeadV3Plus) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` (stride 4) for a normalised ``[N, 3, H, W]`` batch."""
        low, high = self.backbone(x)
        return self.classifier(low, high)


@register_model('deeplabv3plus_mobilenetv2', output_strides=(8, 16),
                description='DeepLabV3+ MobileNetV2 (VainF DeepLabV3Plus-Pytorch layout)')
def deeplabv3plus_mobilenetv2(*, num_classes: int = 21, output_stride: int = 16,
                              width_mult: float = 1.0) -> DeepLabV3Plus:
    """Build DeepLabV3+ MobileNetV2 (ASPP rates 6/12/18 at stride 16, 12/24/36 at 8)."""
    backbone = MobileNetV2Backbone(output_stride, width_mult)
    classifier = DeepLabHeadV3Plus(backbone.high_level_channels, backbone.low_level_channels,
                                   num_classes, ASPP_RATES[output_stride])
    initialise_weights(classifier)
    initialise_weights(backbone)
    return DeepLabV3Plus(backbone, classifier)
