"""Segmentation networks and the registry that builds them by name.

Backbones live in :mod:`.backbones`; the modules here assemble a head on one and register the
result, named by architecture and layout (``_tf``: Google DeepLab's TensorFlow layout,
``_vainf``: VainF DeepLabV3Plus-Pytorch's).
"""

from deeplab_ros.core.models import (  # noqa: F401
    deeplabv3_tf, deeplabv3plus_tf, deeplabv3plus_vainf, lraspp_tf, torchvision_variants)
from deeplab_ros.core.models.registry import (
    available_models, build_model, model_spec, register_model)

__all__ = ['available_models', 'build_model', 'model_spec', 'register_model']
