"""Give a VainF DeepLabV3Plus-Pytorch MobileNet checkpoint the metadata of this package.

VainF's checkpoints (``{'model_state': ...}``) hold weights only; their key names are the
layout of :mod:`~deeplab_ros.core.models.deeplabv3plus_vainf`, so converting is loading them
strictly as ``deeplabv3plus_mobilenetv2`` and recording what a checkpoint here carries: class
names and palette, the recommended input size and where the weights came from.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.labels import resolve_labels
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, DEFAULT_INPUT_SIZE, \
    load_model

VARIANT = 'deeplabv3plus_mobilenetv2'


def convert_vainf(path: str | Path, *, output_stride: int = 16, num_classes: int | None = None,
                  labels: str = '', input_size: int = DEFAULT_INPUT_SIZE
                  ) -> tuple[nn.Module, CheckpointMetadata]:
    """Load a VainF MobileNet checkpoint and give it metadata.

    Args:
        path: The VainF checkpoint (``model_state`` dict).
        output_stride: Output stride the model runs at (8 or 16).
        num_classes: Classes of the model (None: read from the weights).
        labels: Class names and palette: a label set name or a YAML file ('' keeps the
            loader's: the built-in set with as many classes).
        input_size: Recommended input size stored in the metadata.

    Raises:
        InvalidSettingError: ``labels`` has another number of classes than the weights.
    """
    path = Path(path)
    model, metadata = load_model(path, variant=VARIANT, num_classes=num_classes,
                                 output_stride=output_stride)
    if labels:
        label_set = resolve_labels(labels)
        if len(label_set) != metadata.num_classes:
            raise InvalidSettingError(f'{labels} has {len(label_set)} classes, the '
                                      f'checkpoint {metadata.num_classes}', setting='labels')
        metadata.class_names, metadata.palette = label_set.class_names, label_set.palette
    metadata.input_size = input_size
    metadata.source = f'{path.name} (VainF DeepLabV3Plus-Pytorch)'
    return model, metadata
