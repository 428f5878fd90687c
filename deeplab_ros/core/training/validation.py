"""Validation of a segmentation model on labelled samples: confusion matrix, IoU, mIoU."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deeplab_ros.core.metrics import ConfusionMatrix
from deeplab_ros.core.training.data import SampleLike
from deeplab_ros.core.training.transforms import EvalTransform


@dataclass(frozen=True)
class ValidationResult:
    """Scores of one validation pass."""

    mean_iou: float
    pixel_accuracy: float
    iou: tuple[float, ...]        # per class, nan where absent from prediction and truth
    images: int

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able form (nan as ``None``)."""
        return {'mean_iou': self.mean_iou, 'pixel_accuracy': self.pixel_accuracy,
                'iou': [None if np.isnan(value) else value for value in self.iou],
                'images': self.images}


@torch.no_grad()
def predict_labels(model: torch.nn.Module, pixels: torch.Tensor, size: tuple[int, int],
                   device: torch.device) -> np.ndarray:
    """Run ``model`` on one normalised ``[3, h, w]`` image; return HxW class ids at ``size``."""
    logits = model(pixels.unsqueeze(0).to(device))
    if logits.shape[-2:] != torch.Size(size):
        logits = F.interpolate(logits.float(), size=size, mode='bilinear', align_corners=False)
    return logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


def evaluate_model(model: torch.nn.Module, samples: Iterable[SampleLike], *, num_classes: int,
                   device: torch.device, transform: EvalTransform,
                   ignore_index: int = 255) -> ValidationResult:
    """Score ``model`` on ``samples`` at each mask's own resolution.

    The model is put in eval mode for the pass and restored to its previous mode afterwards.
    """
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index)
    was_training = model.training
    model.eval()
    count = 0
    try:
        for sample in samples:
            pixels, target = transform(sample.image_rgb, sample.target)
            prediction = predict_labels(model, pixels, tuple(target.shape), device)
            matrix.update(prediction, target.numpy().astype(np.uint8))
            count += 1
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError('Validation needs at least one sample; the split is empty.')
    return ValidationResult(float(matrix.mean_iou()), float(matrix.pixel_accuracy()),
                            tuple(float(value) for value in matrix.iou()), count)
