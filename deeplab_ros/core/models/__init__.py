"""Segmentation networks and the registry that builds them by name."""

from deeplab_ros.core.models import (  # noqa: F401
    deeplab_mnv2, deeplabv3plus, deeplabv3plus_tf, mobilenet_edgetpu, mobilenetv3_tf,
    torchvision_variants)
from deeplab_ros.core.models.registry import (
    available_models, build_model, model_spec, register_model)

__all__ = ['available_models', 'build_model', 'model_spec', 'register_model']
