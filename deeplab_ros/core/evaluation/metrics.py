"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, pixel accuracy."""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Accumulates a ``[num_classes, num_classes]`` confusion matrix (rows = ground truth).

    Pixels whose ground truth is ``ignore_index`` (or outside the class range) are skipped.
    mIoU is the mean, over the classes present in the ground truth, of intersection over
    union summed over every image seen.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one image (or batch) of predicted and ground-truth class ids."""
        if prediction.shape != target.shape:
            raise ValueError(f'prediction {prediction.shape} and target {target.shape} differ')
        truth = target.reshape(-1).astype(np.int64)
        guess = prediction.reshape(-1).astype(np.int64)
        keep = (truth != self.ignore_index) & (truth >= 0) & (truth < self.num_classes)
        guess = np.clip(guess[keep], 0, self.num_classes - 1)
        self.matrix += np.bincount(truth[keep] * self.num_classes + guess,
                                   minlength=self.num_classes ** 2
                                   ).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both ground truth and prediction."""
        intersection = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - intersection
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, intersection / np.maximum(union, 1), np.nan)

    def present(self) -> np.ndarray:
        """Mask of the classes that occur in the ground truth."""
        return self.matrix.sum(1) > 0

    def mean_iou(self) -> float:
        """Mean IoU over the classes present in the ground truth (0 when none is)."""
        present = self.present()
        return float(np.nanmean(np.nan_to_num(self.iou()[present]))) if present.any() else 0.0

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else 0.0
