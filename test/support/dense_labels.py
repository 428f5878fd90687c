"""The dense reference of the exact labels: every class interpolated at every frame pixel.

The definition of ``upsample: exact`` computed the plain way: the model's low-resolution
logits interpolated bilinearly at each frame pixel (the cells and weights of
``axis_sampling``, i.e. the model's resize convention through the letterbox placement), then
the arg-max over all classes and the top-class probability over all classes. Rows are done a
few at a time so a 4K frame fits in memory. Test oracle only: it costs classes x pixels.
The confidence image is that probability at the points :func:`reference_confidence` names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deeplab_ros.core.inference.exact_upsample import axis_sampling, AxisSampling

#: Most interpolated values held at once.
CHUNK_VALUES = 1 << 23


@dataclass
class DenseReference:
    """Dense labels and confidence, and the interpolated values they came from."""

    logits: torch.Tensor  # [C, h, w] float32
    rows: AxisSampling
    columns: AxisSampling
    labels: torch.Tensor       # [H, W] int64
    confidence: torch.Tensor | None  # [H, W] uint8, when asked for

    def values(self, y: torch.Tensor, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The interpolated logits of ``classes`` at pixels ``(y, x)`` (same arithmetic)."""
        rows, columns, grid = self.rows, self.columns, self.logits
        top = grid[classes, rows.lower[y], columns.lower[x]] * columns.complement[x] + \
            grid[classes, rows.lower[y], columns.upper[x]] * columns.weight[x]
        bottom = grid[classes, rows.upper[y], columns.lower[x]] * columns.complement[x] + \
            grid[classes, rows.upper[y], columns.upper[x]] * columns.weight[x]
        return top * rows.complement[y] + bottom * rows.weight[y]


def dense_reference(logits: torch.Tensor, rows: AxisSampling, columns: AxisSampling,
                    confidence: bool = True) -> DenseReference:
    """Labels (first arg-max over all classes) and confidence of every frame pixel."""
    grid = logits.float()
    classes, height, width = grid.shape[0], rows.lower.numel(), columns.lower.numel()
    labels = torch.empty((height, width), dtype=torch.int64, device=grid.device)
    probability = torch.empty((height, width), dtype=torch.uint8, device=grid.device) \
        if confidence else None
    step = max(1, CHUNK_VALUES // (classes * width))
    for start in range(0, height, step):
        part = slice(start, min(height, start + step))
        upper_rows = grid.index_select(1, rows.lower[part])
        lower_rows = grid.index_select(1, rows.upper[part])
        weight_x, complement_x = columns.weight, columns.complement
        top = upper_rows.index_select(2, columns.lower) * complement_x + \
            upper_rows.index_select(2, columns.upper) * weight_x
        bottom = lower_rows.index_select(2, columns.lower) * complement_x + \
            lower_rows.index_select(2, columns.upper) * weight_x
        values = top * rows.complement[part, None] + bottom * rows.weight[part, None]
        best, labels[part] = values.max(dim=0)
        if probability is not None:
            normaliser = torch.exp(values - best).sum(dim=0)
            probability[part] = (255.0 / normaliser).round_().to(torch.uint8)
    return DenseReference(grid, rows, columns, labels, probability)


def assert_equals_dense_reference(labels: torch.Tensor, reference: DenseReference) -> None:
    """Labels identical to the reference except exact ties.

    Where the labels differ, the reference's interpolated values of both classes must be
    equal (same arithmetic).
    """
    labels = labels.to(reference.labels.device).long()
    assert labels.shape == reference.labels.shape
    y, x = torch.nonzero(labels != reference.labels, as_tuple=True)
    if y.numel():
        ours = reference.values(y, x, labels[y, x])
        theirs = reference.values(y, x, reference.labels[y, x])
        assert torch.equal(ours, theirs), \
            f'{int((ours != theirs).sum())} of {labels.numel()} pixels differ without a tie'


def reference_confidence(logits: torch.Tensor, frame_size: tuple[int, int],
                         region_size: tuple[int, int], input_size: int, resize: str
                         ) -> torch.Tensor:
    """The confidence image by its definition, computed densely.

    Along each axis the points are the input's pixels of the frame's region when the frame
    is larger than the region, the frame's pixels otherwise; each frame pixel takes the value
    of the point whose cell its centre lies in: point ``floor((i + 0.5) * points / frame)``.
    """
    samplings = [axis_sampling(min(frame, region), region, input_size, cells, resize,
                               logits.device)
                 for frame, region, cells in zip(frame_size, region_size, logits.shape[1:])]
    confidence = dense_reference(logits, *samplings).confidence
    assert confidence is not None
    for dimension, (frame, sampling) in enumerate(zip(frame_size, samplings)):
        points = sampling.lower.numel()
        centres = (torch.arange(frame, dtype=torch.float64) + 0.5) * points / frame
        confidence = confidence.index_select(
            dimension, centres.floor().long().clamp(max=points - 1).to(logits.device))
    return confidence


def assert_confidence_close(probability: torch.Tensor, expected: torch.Tensor) -> None:
    """Confidence within one level of ``expected``, and equal at 99.9 % of the pixels.

    The normaliser is a sum over classes in another order, so the two may differ by one
    level where 255 / sum lies on a rounding boundary.
    """
    assert probability.shape == expected.shape and probability.dtype == torch.uint8
    difference = (probability.to(expected.device).int() - expected.int()).abs()
    assert int(difference.max()) <= 1
    assert float((difference == 0).float().mean()) >= 0.999
