"""The ROS-free perception core: models, weights, inference, labels, spatial output, scoring.

Nothing here imports rclpy or ROS messages, so the core runs without a ROS install. The
subpackages group it by concern: :mod:`.models` (networks and their registry), :mod:`.weights`
(checkpoints, pretrained models, conversions), :mod:`.inference` (the segmenter and what it
runs), :mod:`.spatial` (depth and regions), :mod:`.evaluation` (datasets and scores) and
:mod:`.training`.

The names most programs need are available from here, imported on first use (so importing
``deeplab_ros.core`` loads nothing heavy)::

    from deeplab_ros.core import Segmenter
    segmenter = Segmenter.from_checkpoint('pretrained')
"""

from __future__ import annotations

import importlib
from typing import Any, TYPE_CHECKING

#: Public name -> the module that defines it.
_EXPORTS = {
    'Segmenter': 'deeplab_ros.core.inference.segmenter',
    'SegmentationResult': 'deeplab_ros.core.inference.segmenter',
    'available_models': 'deeplab_ros.core.models',
    'build_model': 'deeplab_ros.core.models',
    'load_model': 'deeplab_ros.core.weights.checkpoint',
    'save_checkpoint': 'deeplab_ros.core.weights.checkpoint',
    'CheckpointMetadata': 'deeplab_ros.core.weights.checkpoint',
    'resolve_labels': 'deeplab_ros.core.labels',
    'LabelSet': 'deeplab_ros.core.labels',
}

__all__ = ['available_models', 'build_model', 'CheckpointMetadata', 'LabelSet', 'load_model',
           'resolve_labels', 'save_checkpoint', 'SegmentationResult', 'Segmenter']

if TYPE_CHECKING:
    from deeplab_ros.core.inference.segmenter import SegmentationResult, Segmenter
    from deeplab_ros.core.labels import LabelSet, resolve_labels
    from deeplab_ros.core.models import available_models, build_model
    from deeplab_ros.core.weights.checkpoint import (
        CheckpointMetadata, load_model, save_checkpoint)


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily imported ones included."""
    return sorted({*globals(), *_EXPORTS})
