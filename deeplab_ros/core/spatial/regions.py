"""Per-object regions of a label image: connected pixels of one class, in 2D and in 3D.

    regions = find_regions(labels, confidence, min_area_fraction=0.001, ignore=(0,))
    for region in regions.regions:
        region.class_id, region.box, region.area, region.score
    boxes = regions_3d(regions, points)        # centroid and robust box per region, metres
    image = region_image(regions)              # HxW uint16: 1 + region index, 0 elsewhere

A region is an 8-connected component of the pixels of one class. Its 2D box is in pixel-edge
coordinates: pixel column ``u`` spans ``[u, u + 1)``, so a box ``(x, y, width, height)``
encloses exactly the columns ``x .. x + width - 1`` and rows ``y .. y + height - 1``
(OpenCV's convention). Its score is the mean top-class probability over its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from deeplab_ros.core.spatial.geometry import resize_nearest

#: Value of the region-id image where no region is.
NO_REGION = -1
#: Most regions :func:`region_image` can number (its pixels are uint16, 0 = no region).
MAX_IMAGE_REGIONS = 65535


@dataclass(frozen=True)
class Region:
    """One connected region of a class."""

    class_id: int
    x: int          # left column
    y: int          # top row
    width: int      # columns covered
    height: int     # rows covered
    area: int       # pixels
    score: float    # mean top-class probability over the pixels, [0, 1]

    @property
    def center(self) -> tuple[float, float]:
        """Box centre (column, row) in pixel-edge coordinates."""
        return self.x + self.width / 2.0, self.y + self.height / 2.0


@dataclass(frozen=True)
class RegionSet:
    """The regions of a frame and the image saying which pixel belongs to which."""

    regions: tuple[Region, ...]
    ids: np.ndarray   # HxW int32: index into ``regions``, or NO_REGION


@dataclass(frozen=True)
class Region3D:
    """Where a region is in space (camera optical frame, metres)."""

    index: int                           # index of the region in its RegionSet
    centroid: tuple[float, float, float]
    box_min: tuple[float, float, float]
    box_max: tuple[float, float, float]
    points: int                          # points with depth that were used

    @property
    def box_center(self) -> tuple[float, float, float]:
        """Centre of the axis-aligned box."""
        (x0, y0, z0), (x1, y1, z1) = self.box_min, self.box_max
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0, (z0 + z1) / 2.0)

    @property
    def box_size(self) -> tuple[float, float, float]:
        """Edge lengths of the axis-aligned box."""
        (x0, y0, z0), (x1, y1, z1) = self.box_min, self.box_max
        return (x1 - x0, y1 - y0, z1 - z0)


def find_regions(labels: np.ndarray, confidence: np.ndarray | None = None, *,
                 min_area_fraction: float = 0.0, ignore: Iterable[int] = (),
                 connectivity: int = 8) -> RegionSet:
    """Connected regions of every class present in an HxW uint8 label image.

    Args:
        labels: HxW uint8 class ids.
        confidence: HxW top-class probability, uint8 (x 255, as the segmenter returns it)
            or float in [0, 1]; ``None`` gives every region the score 1.0.
        min_area_fraction: Regions smaller than this fraction of the image are dropped.
        ignore: Class ids that never form regions (background, wall, floor, ...).
        connectivity: 8 (diagonal neighbours join) or 4.

    Returns:
        The regions ordered by class id, then by their first pixel in row-major order.
    """
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f'labels must be HxW uint8, got shape {labels.shape} '
                         f'dtype {labels.dtype}')
    if confidence is not None and confidence.shape != labels.shape:
        raise ValueError(f'confidence {confidence.shape} and labels {labels.shape} differ')
    height, width = labels.shape
    min_area = max(1, int(np.ceil(min_area_fraction * height * width)))
    skipped = set(int(c) for c in ignore)
    flat = labels.reshape(-1).astype(np.intp)
    counts = np.bincount(flat, minlength=256)
    classes = [c for c in np.flatnonzero(counts >= min_area).tolist() if c not in skipped]
    ids = np.full(labels.shape, NO_REGION, dtype=np.int32)
    if not classes:
        return RegionSet(regions=(), ids=ids)
    # Rows and columns each class occupies: every class is then labelled inside its own
    # bounding box only.
    row_of = np.repeat(np.arange(height, dtype=np.intp), width)
    column_of = np.tile(np.arange(width, dtype=np.intp), height)
    in_rows = np.bincount(flat * height + row_of, minlength=256 * height).reshape(256, height)
    in_columns = np.bincount(flat * width + column_of,
                             minlength=256 * width).reshape(256, width)
    boxes: list[tuple[int, int, int, int, int, int]] = []  # class, x, y, width, height, area
    for class_id in classes:
        rows = np.flatnonzero(in_rows[class_id])
        columns = np.flatnonzero(in_columns[class_id])
        window = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
        mask = (labels[window] == class_id).view(np.uint8)
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            mask, connectivity=connectivity, ltype=cv2.CV_32S)
        big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
        if big.size == 0:
            continue
        # component number -> region index (NO_REGION for background and small components)
        lookup = np.full(count, NO_REGION, dtype=np.int32)
        lookup[big] = np.arange(len(boxes), len(boxes) + big.size, dtype=np.int32)
        inside = lookup[components]
        np.copyto(ids[window], inside, where=inside != NO_REGION)
        for left, top, box_width, box_height, area in stats[big, :5].tolist():
            boxes.append((class_id, left + int(columns[0]), top + int(rows[0]), box_width,
                          box_height, area))
    scores = _mean_per_region(ids, confidence, len(boxes))
    regions = [Region(class_id=class_id, x=x, y=y, width=box_width, height=box_height,
                      area=area, score=score)
               for (class_id, x, y, box_width, box_height, area), score in zip(boxes, scores)]
    return RegionSet(regions=tuple(regions), ids=ids)


def region_image(regions: RegionSet) -> np.ndarray:
    """The regions as an HxW uint16 image: 1 + each pixel's region index, 0 outside regions.

    Pixel value ``i + 1`` marks exactly the pixels of ``regions.regions[i]``, so one
    region's mask is ``image == i + 1``. Regions past the :data:`MAX_IMAGE_REGIONS`-th do
    not fit in 16 bits and are left at 0.
    """
    numbers = regions.ids + 1  # NO_REGION -> 0
    if len(regions.regions) > MAX_IMAGE_REGIONS:
        numbers[numbers > MAX_IMAGE_REGIONS] = 0
    return numbers.astype(np.uint16)


def _mean_per_region(ids: np.ndarray, confidence: np.ndarray | None, count: int
                     ) -> list[float]:
    """Mean confidence (as a probability) over each region's pixels; 1.0 without confidence."""
    if confidence is None or count == 0:
        return [1.0] * count
    if confidence.dtype == np.uint8:
        # Exact integer sums from one histogram of (region, value) pairs rather than a
        # weighted bincount, which converts every pixel to float64: chosen for speed (the
        # regions step's cost: docs/benchmarks.md#spatial-outputs).
        pairs = (ids.astype(np.intp) + 1) * 256 + confidence
        histogram = np.bincount(pairs.reshape(-1), minlength=(count + 1) * 256)
        histogram = histogram.reshape(count + 1, 256)[1:]
        sums = histogram @ np.arange(256, dtype=np.int64)
        return (sums / histogram.sum(axis=1) / 255.0).tolist()
    sums = np.bincount(ids.reshape(-1) + 1, weights=confidence.reshape(-1).astype(np.float64),
                       minlength=count + 1)[1:]
    areas = np.bincount(ids.reshape(-1) + 1, minlength=count + 1)[1:]
    return (sums / areas).tolist()


def regions_3d(regions: RegionSet, points: np.ndarray, *, percentile: float = 5.0,
               min_points: int = 1) -> list[Region3D]:
    """Centroid and robust axis-aligned box of every region that has depth.

    Args:
        regions: From :func:`find_regions` on the frame's labels.
        points: HxWx3 float32 points (NaN without depth) of the depth image; when its size
            differs from the label image's, the region ids are resized to it (nearest).
        percentile: The box spans the ``percentile``-th to ``100 - percentile``-th
            percentile of the region's points on each axis (0 = the full extent).
        min_points: Regions with fewer points with depth are left out.

    Returns:
        One :class:`Region3D` per region with at least ``min_points`` points, in region order.
    """
    if not 0.0 <= percentile < 50.0:
        raise ValueError(f'percentile must be within [0, 50), got {percentile}')
    if not regions.regions:
        return []
    ids = resize_nearest(regions.ids, points.shape[:2])
    valid = (ids != NO_REGION) & ~np.isnan(points[..., 2])
    region_of_point = ids[valid]
    xyz = points[valid].astype(np.float64)
    order = np.argsort(region_of_point, kind='stable')
    region_of_point, xyz = region_of_point[order], xyz[order]
    starts = np.searchsorted(region_of_point, np.arange(len(regions.regions) + 1))
    result: list[Region3D] = []
    for index in range(len(regions.regions)):
        chunk = xyz[starts[index]:starts[index + 1]]
        if len(chunk) < max(1, min_points):
            continue
        low, high = np.percentile(chunk, [percentile, 100.0 - percentile], axis=0)
        result.append(Region3D(index=index, centroid=tuple(chunk.mean(axis=0).tolist()),
                               box_min=tuple(low.tolist()), box_max=tuple(high.tolist()),
                               points=len(chunk)))
    return result
