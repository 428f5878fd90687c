"""Segmentation networks and the registry that builds them by name."""

from deeplab_ros.core.models import deeplab_mnv2, deeplabv3plus, torchvision_variants  # noqa: F401
from deeplab_ros.core.models.registry import (
    available_models, build_model, model_spec, register_model)

__all__ = ['available_models', 'build_model', 'model_spec', 'register_model']
