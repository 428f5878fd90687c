"""Fine-tuning of the registered segmentation models on PASCAL VOC layout datasets.

Import :class:`Trainer` and :class:`TrainConfig` from
:mod:`deeplab_ros.core.training.trainer` / ``.config``; this package file stays light so the
augmentation and schedule helpers import without the model code.
"""

from deeplab_ros.core.training.config import TrainConfig
from deeplab_ros.core.training.schedule import PolyLR
from deeplab_ros.core.training.transforms import TrainTransform

__all__ = ['PolyLR', 'TrainConfig', 'TrainTransform']
