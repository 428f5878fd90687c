"""torchvision's segmentation models, registered with plain-tensor outputs.

Built with ``weights=None, weights_backbone=None``: nothing is ever downloaded. Their state
dict keys stay torchvision's, so state-dict files saved from torchvision load unchanged.
torchvision is imported when one of them is built, so the other variants (and the segmenter)
run without it.
torchvision resizes the head's logits to the input with ``align_corners=False``
(``logits_resize = 'half_pixel'``, :mod:`~deeplab_ros.core.models.logits`).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.models.registry import register_model


def returning_logits(model: nn.Module) -> nn.Module:
    """Make ``model`` return its ``'out'`` tensor instead of a dict, keeping its state keys.

    The instance's class becomes a subclass of its own class whose forward unwraps the dict
    and which has ``forward_logits`` (the head's output before torchvision's resize), so
    attributes, modules and state-dict keys are exactly torchvision's.
    """
    base = type(model)

    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return base.forward(self, x)['out']

    def forward_logits(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        from torchvision.models.segmentation.lraspp import LRASPP  # built with torchvision

        backbone, classifier = cast(nn.Module, self.backbone), cast(nn.Module, self.classifier)
        features = backbone(x)
        return classifier(features if isinstance(self, LRASPP) else features['out'])

    model.__class__ = type(f'{base.__name__}Logits', (base,), {
        'forward': forward, 'forward_logits': forward_logits, 'logits_resize': 'half_pixel'})
    return model


def _register(name: str, factory: str, stride: int, text: str) -> None:
    """Register torchvision's ``segmentation.<factory>`` as ``name``."""
    def builder(*, num_classes: int = 21, output_stride: int = stride) -> nn.Module:
        try:
            from torchvision.models import segmentation
        except ImportError as error:
            raise InvalidSettingError(f'model variant {name!r} needs torchvision, which is not '
                                      f'installed ({error}).', setting='variant') from error
        model = getattr(segmentation, factory)(weights=None, weights_backbone=None,
                                               num_classes=num_classes, aux_loss=False)
        return returning_logits(model)
    builder.__doc__ = text
    register_model(name, output_strides=(stride,), description=text)(builder)


_register('deeplabv3_mobilenetv3_large', 'deeplabv3_mobilenet_v3_large', 16,
          'torchvision DeepLabV3 MobileNetV3-Large')
_register('lraspp_mobilenetv3_large', 'lraspp_mobilenet_v3_large', 16,
          'torchvision LR-ASPP MobileNetV3-Large')
_register('deeplabv3_resnet50', 'deeplabv3_resnet50', 8,
          'torchvision DeepLabV3 ResNet-50')
_register('deeplabv3_resnet101', 'deeplabv3_resnet101', 8,
          'torchvision DeepLabV3 ResNet-101')
