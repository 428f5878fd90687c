"""Confusion matrix, IoU, mIoU and pixel accuracy against independent hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from deeplab_ros.core.evaluation.metrics import ConfusionMatrix

IGNORE = 255


def _reference_scores(pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int
                      ) -> tuple[np.ndarray, float, float]:
    """Per-class IoU, mIoU and pixel accuracy by explicit per-class set counting."""
    intersection = np.zeros(num_classes)
    union = np.zeros(num_classes)
    in_truth = np.zeros(num_classes, dtype=bool)
    correct = counted = 0
    for prediction, target in pairs:
        valid = target != IGNORE
        correct += int(((prediction == target) & valid).sum())
        counted += int(valid.sum())
        for index in range(num_classes):
            predicted = (prediction == index) & valid
            true = (target == index) & valid
            intersection[index] += (predicted & true).sum()
            union[index] += (predicted | true).sum()
            in_truth[index] |= bool(true.any())
    iou = np.full(num_classes, np.nan)
    iou[union > 0] = intersection[union > 0] / union[union > 0]
    return iou, float(iou[in_truth].mean()), correct / counted


def test_two_small_masks_with_ignore_pixels_by_hand() -> None:
    # Image 1: truth / prediction; 255 marks pixels that must not count at all.
    truth_1 = np.array([[0, 0, 1, 1],
                        [0, 255, 1, 2]], dtype=np.uint8)
    guess_1 = np.array([[0, 1, 1, 1],
                        [2, 2, 1, 2]], dtype=np.uint8)
    # Image 2
    truth_2 = np.array([[2, 2, 255],
                        [0, 1, 1]], dtype=np.uint8)
    guess_2 = np.array([[2, 0, 0],
                        [0, 1, 0]], dtype=np.uint8)
    matrix = ConfusionMatrix(3)
    matrix.update(guess_1, truth_1)
    matrix.update(guess_2, truth_2)
    # Counted (truth, guess) pairs, ignore pixels dropped:
    # image 1: (0,0) (0,1) (1,1) (1,1) (0,2) (1,1) (2,2)
    # image 2: (2,2) (2,0) (0,0) (1,1) (1,0)
    expected = np.array([[2, 1, 1],
                         [1, 4, 0],
                         [1, 0, 2]])
    assert np.array_equal(matrix.matrix, expected)
    # class 0: I 2, truth 4, predicted 4 -> U 6; class 1: I 4, truth 5, predicted 5 -> U 6;
    # class 2: I 2, truth 3, predicted 3 -> U 4.
    assert matrix.iou() == pytest.approx([2 / 6, 4 / 6, 2 / 4])
    assert matrix.mean_iou() == pytest.approx((2 / 6 + 4 / 6 + 2 / 4) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(8 / 12)
    assert matrix.matrix.dtype == np.int64


def test_classes_only_predicted_are_not_averaged() -> None:
    matrix = ConfusionMatrix(5)
    matrix.update(np.array([[0, 0, 4, 1]]), np.array([[0, 0, 1, 1]]))
    iou = matrix.iou()
    assert iou[0] == pytest.approx(1.0) and iou[1] == pytest.approx(0.5)
    assert iou[4] == pytest.approx(0.0)          # predicted but never true: IoU 0 ...
    assert np.isnan(iou[2]) and np.isnan(iou[3])  # ... absent from both: NaN
    assert matrix.mean_iou() == pytest.approx(0.75)  # ... and only truth classes count


def test_random_masks_agree_with_the_reference() -> None:
    rng = np.random.default_rng(7)
    pairs = []
    matrix = ConfusionMatrix(6)
    for shape in ((17, 23), (5, 40), (31, 9)):
        target = rng.integers(0, 6, shape).astype(np.uint8)
        target[rng.random(shape) < 0.15] = IGNORE
        prediction = np.where(rng.random(shape) < 0.6, target, rng.integers(0, 6, shape))
        prediction = np.where(prediction == IGNORE, 0, prediction).astype(np.uint8)
        pairs.append((prediction, target))
        matrix.update(prediction, target)
    iou, mean_iou, accuracy = _reference_scores(pairs, 6)
    np.testing.assert_allclose(matrix.iou(), iou, equal_nan=True)
    assert matrix.mean_iou() == pytest.approx(mean_iou)
    assert matrix.pixel_accuracy() == pytest.approx(accuracy)


def test_empty_and_mismatched_inputs() -> None:
    matrix = ConfusionMatrix(3)
    assert matrix.mean_iou() == 0.0 and matrix.pixel_accuracy() == 0.0
    matrix.update(np.full((2, 2), 1, np.uint8), np.full((2, 2), IGNORE, np.uint8))
    assert matrix.matrix.sum() == 0
    with pytest.raises(ValueError, match='differ'):
        matrix.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
