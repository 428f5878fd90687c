"""MobileNetV3-Large DeepLab with its LR-ASPP-style head, in Google DeepLab's TensorFlow layout.

The architecture of Google's Cityscapes MobileNetV3 release
(``deeplab_mnv3_large_cityscapes_trainfine``), read from its TFLite graph:

- backbone: MobileNetV3-Large with DeepLab's segmentation tail
  (:mod:`~deeplab_ros.core.models.backbones.mobilenetv3_tf`), output stride 32;
- head at stride 32: a 1x1 conv to 128 + ReLU, multiplied by an image-pooling gate (average
  pool with a fixed 25x25 kernel and stride (4, 5), 1x1 conv to 128 + hard sigmoid, bilinear
  back to the feature size), resized to stride 8 and turned into logits by a 1x1 conv;
- stride-8 branch: the depthwise activation (120 channels, before squeeze-and-excite) of the
  6th block projected to the logits by a 1x1 conv and added;
- every resize bilinear with ``align_corners=True``; logits (stride 8) resized to the input
  size by ``forward`` (:mod:`~deeplab_ros.core.models.logits`).

Image pooling at any input size: the 25x25 kernel is what DeepLab derives from its training
crop (769 / 32 rounded up = 25 feature pixels), so at the 769x769 training crop the pooling
is global, and at the 1025x2049 export size it yields a 3x9 grid of local averages. Feature
maps smaller than the kernel (inputs below 769 on a side) would leave a "VALID" pooling with
nothing to average, so the kernel is clipped to the feature size on that axis: the pooling
becomes global along it, which is what the model saw in training. Inputs of the form
32k + 1 (513, 769, 1025, ...) map exactly onto the graph's pixel grid.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
import torch.nn.functional as F

from deeplab_ros.core.models.backbones.mobilenetv2 import initialise_weights
from deeplab_ros.core.models.backbones.mobilenetv3_tf import (
    FINAL_CHANNELS, mobilenetv3_large_features, MobileNetV3Block)
from deeplab_ros.core.models.logits import LogitsNetwork
from deeplab_ros.core.models.registry import register_model
from deeplab_ros.core.models.resize import resize_bilinear

#: Index in the backbone (stem = 0) of the stride-8 block whose depthwise activation feeds
#: the stride-8 logits branch.
LOW_LEVEL_BLOCK = 6
#: Image-pooling kernel and stride (height, width) at the feature resolution.
IMAGE_POOLING_KERNEL = (25, 25)
IMAGE_POOLING_STRIDE = (4, 5)
HEAD_CHANNELS = 128


class LiteRASPPHead(nn.Module):
    """The gated stride-32 branch and the stride-8 branch, summed as logits at stride 8."""

    def __init__(self, in_channels: int, low_level_channels: int, num_classes: int,
                 channels: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.image_pooling = nn.Sequential(nn.Conv2d(in_channels, channels, 1),
                                           nn.Hardsigmoid())
        self.aspp0 = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.logits = nn.Conv2d(channels, num_classes, 1)
        self.low_level_logits = nn.Conv2d(low_level_channels, num_classes, 1)

    def forward(self, features: torch.Tensor, low_level: torch.Tensor) -> torch.Tensor:
        """Logits at the low-level (stride-8) resolution."""
        size = features.shape[-2:]
        # The fixed kernel, clipped to the feature size (see the module docstring).
        kernel = [min(int(limit), int(length)) for limit, length in zip(
            IMAGE_POOLING_KERNEL, size)]
        pooled = F.avg_pool2d(features, kernel, IMAGE_POOLING_STRIDE)
        gate = resize_bilinear(self.image_pooling(pooled), size, 'align_corners')
        gated = resize_bilinear(self.aspp0(features) * gate, low_level.shape[-2:],
                                'align_corners')
        return self.logits(gated) + self.low_level_logits(low_level)


class LRASPPMobileNetV3TF(LogitsNetwork):
    """MobileNetV3-Large (folded batch norm) + :class:`LiteRASPPHead`."""

    logits_resize = 'align_corners'

    def __init__(self, *, num_classes: int) -> None:
        super().__init__()
        self.backbone = mobilenetv3_large_features()
        tap = self.backbone[LOW_LEVEL_BLOCK]
        assert isinstance(tap, MobileNetV3Block)
        low_level_channels = tap.depthwise_conv.out_channels
        self.head = LiteRASPPHead(FINAL_CHANNELS, low_level_channels, num_classes)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the stride-8 branch's resolution."""
        features = self.backbone[:LOW_LEVEL_BLOCK](x)
        tap = cast(MobileNetV3Block, self.backbone[LOW_LEVEL_BLOCK])
        features, low_level = tap.forward_with_depthwise(features)
        return self.head(self.backbone[LOW_LEVEL_BLOCK + 1:](features), low_level)


@register_model('lraspp_mobilenetv3_large_tf', output_strides=(32,),
                description="MobileNetV3-Large DeepLab, LR-ASPP-style head, Google DeepLab's "
                            'layout (TFLite port; output stride 32 only)')
def lraspp_mobilenetv3_large_tf(*, num_classes: int = 19, output_stride: int = 32
                                ) -> LRASPPMobileNetV3TF:
    """Build Google's MobileNetV3-Large DeepLab (output stride 32, the only one it has)."""
    if output_stride != 32:
        raise ValueError(f'lraspp_mobilenetv3_large_tf runs at output stride 32 only, not '
                         f'{output_stride}')
    model = LRASPPMobileNetV3TF(num_classes=num_classes)
    initialise_weights(model)
    return model
