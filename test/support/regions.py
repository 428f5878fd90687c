"""Check a region-number image against its labels and boxes, with OpenCV's components."""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np
import pytest

#: One region: (class id, left, top, right, bottom), the box in pixel-edge coordinates.
Box = tuple[int, float, float, float, float]


def check_region_image(numbers: np.ndarray, labels: np.ndarray, boxes: Sequence[Box],
                       min_area: int, ignored: Iterable[int] = (0,)) -> None:
    """Assert ``numbers`` marks exactly the regions ``boxes`` describe, and nothing else.

    Pixel value ``i + 1`` must be one whole 8-connected component of the class of ``boxes[i]``
    (so its area is that component's) which the box encloses exactly; 0 elsewhere, where only
    the ``ignored`` classes and components smaller than ``min_area`` pixels may remain.
    """
    assert int(numbers.max()) == len(boxes)
    covered = np.zeros(numbers.shape, bool)
    for index, (class_id, left, top, right, bottom) in enumerate(boxes):
        mask = numbers == index + 1
        rows, columns = np.nonzero(mask)
        assert (labels[mask] == class_id).all(), index
        assert (left, top, right, bottom) == pytest.approx(
            (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1)), index
        _, components = cv2.connectedComponents((labels == class_id).astype(np.uint8),
                                                connectivity=8)
        assert np.array_equal(mask, components == components[rows[0], columns[0]]), index
        covered |= mask
    skipped = set(ignored)
    for class_id in np.unique(labels[~covered]).tolist():
        if class_id in skipped:
            continue
        count, components = cv2.connectedComponents(
            ((labels == class_id) & ~covered).astype(np.uint8), connectivity=8)
        sizes = np.bincount(components.reshape(-1), minlength=count)[1:]
        assert (sizes < min_area).all(), class_id
