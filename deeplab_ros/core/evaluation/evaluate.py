"""Scoring a :class:`~deeplab_ros.core.inference.segmenter.Segmenter` on labelled images.

This is the one scoring path of the package: ``deeplab-ros-eval`` and the trainer's
validation both call :func:`evaluate`, so a model is scored exactly as the node runs it
(letterboxed to the segmenter's input size, labels returned at each image's own resolution).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from deeplab_ros.core.evaluation.datasets import DatasetError, LabelledImage
from deeplab_ros.core.evaluation.metrics import ConfusionMatrix
from deeplab_ros.core.inference.segmenter import SegmentationResult, Segmenter


ImageCallback = Callable[[LabelledImage, SegmentationResult, ConfusionMatrix], None]


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one pass over a labelled set (ignore pixels excluded)."""

    mean_iou: float
    pixel_accuracy: float
    iou: tuple[float, ...]        # per class, nan where absent from prediction and truth
    images: int
    confusion: ConfusionMatrix

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able form (nan as ``None``, no confusion matrix)."""
        return {'mean_iou': self.mean_iou, 'pixel_accuracy': self.pixel_accuracy,
                'iou': [None if np.isnan(value) else value for value in self.iou],
                'images': self.images}


def evaluate(segmenter: Segmenter, samples: Iterable[LabelledImage], *,
             overlay: bool = False, on_image: ImageCallback | None = None) -> EvaluationResult:
    """Segment every sample with ``segmenter`` and score it against its mask.

    Args:
        segmenter: The model as the node runs it.
        samples: Images (HxWx3 uint8 RGB) with class-id masks of the same size.
        overlay: Also compute overlays (handed to ``on_image`` in the result).
        on_image: Called after each image with the sample, its result and the confusion
            matrix of that image alone (for per-image reports).

    Raises:
        DatasetError: A mask does not match its image, or there are no samples.
    """
    labels = segmenter.labels
    total = ConfusionMatrix(segmenter.num_classes, labels.ignore_index)
    count = 0
    for sample in samples:
        if sample.target.shape != sample.image_rgb.shape[:2]:
            raise DatasetError(f'{sample.name}: mask {sample.target.shape} does not match image '
                               f'{sample.image_rgb.shape[:2]}')
        result = segmenter.segment(sample.image_rgb, overlay=overlay)
        total.update(result.labels, sample.target)
        if on_image is not None:
            single = ConfusionMatrix(segmenter.num_classes, labels.ignore_index)
            single.update(result.labels, sample.target)
            on_image(sample, result, single)
        count += 1
    if count == 0:
        raise DatasetError('Scoring needs at least one labelled image; the set is empty.')
    return EvaluationResult(float(total.mean_iou()), float(total.pixel_accuracy()),
                            tuple(float(value) for value in total.iou()), count, total)
