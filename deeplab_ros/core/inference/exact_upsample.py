"""Labels at a frame's own resolution, exactly, from logits at the network's resolution.

The label of a frame pixel is the arg-max over classes of the model's logits interpolated
bilinearly at that pixel, the interpolation being the model's own resize convention
(``logits_resize``, :mod:`~deeplab_ros.core.models.logits`) seen through the letterbox
placement (:func:`axis_sampling`). Computing that densely costs classes x frame pixels; this
module computes the same labels with far less work, on any device, with torch operations:

- A pixel lies between four logit cells (a *quad*). Where all four cells have the same
  arg-max class, that class is the pixel's label: a convex combination of vectors that all
  peak at one class peaks at it.
- Elsewhere only classes that can still win are interpolated: a class whose largest value
  over the four cells is below the largest "smallest value over the four cells" of any class
  can never be the arg-max there. The candidates of each quad are interpolated at its pixels
  only.

Both shortcuts hold in floating point as well: with the same weights for every class, each
step of the interpolation (products with non-negative weights, sums) is monotone, so they
can at most turn a strict win into an exact tie, never into a loss. The labels are those of
the dense computation except where two classes tie exactly.

The confidence (top-class probability x 255) needs the softmax's denominator, a sum over
every class that is not negligible, which for scene models is most of them at most pixels:
there is no shortcut, every class is interpolated at every point where it is computed. It is
computed at the resolution the network saw, never finer (:func:`top_probability_image`): at
the pixels of the frame's region in the network input when the frame is larger than that
region, each frame pixel taking the value of the input pixel its centre falls in (as a
network resizing its logits to its input, then a nearest-neighbour resize, gives it), and at
the frame's own pixels otherwise. At 1080p and input 385 that is 25 times fewer points than
the frame's (14 times at input 513).

Work is done in chunks of at most :data:`CHUNK_ELEMENTS` values, so a 4K frame never holds
classes x 4K values.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
from typing import NamedTuple

import torch

from deeplab_ros.core.models.resize import source_affine

#: Most interpolated values one chunk holds at once.
CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class AxisSampling:
    """Where each frame pixel along one axis reads the logits: two cells and their weights.

    ``value = logits[lower] * complement + logits[upper] * weight``, with ``complement`` equal
    to ``1 - weight`` (float32, computed once so every user interpolates identically).
    """

    lower: torch.Tensor       # int64 [frame length], non-decreasing
    upper: torch.Tensor       # int64 [frame length]: min(lower + 1, logits length - 1)
    weight: torch.Tensor      # float32 [frame length], in [0, 1]
    complement: torch.Tensor  # float32 [frame length]: 1 - weight


@functools.lru_cache(maxsize=64)  # a camera's frames share one placement
def axis_sampling(frame_length: int, region_length: int, input_length: int,
                  logits_length: int, resize: str, device: torch.device) -> AxisSampling:
    """The logit cells and weights of every frame pixel along one axis.

    The frame was resized (half-pixel centres) to ``region_length`` pixels of the network's
    ``input_length``-pixel input: frame pixel ``i`` sits at input position
    ``(i + 0.5) * region_length / frame_length - 0.5``, kept inside the region. The model's
    ``resize`` convention maps that input position to a position in its ``logits_length``
    logits (:func:`~deeplab_ros.core.models.resize.source_affine`), clamped to the logits.
    The result is cached and shared: its tensors are read, never written.
    """
    index = torch.arange(frame_length, dtype=torch.float64)
    position = (index + 0.5) * (region_length / frame_length) - 0.5
    position = position.clamp(0.0, region_length - 1)
    # The model's resize from its logits to its input: input pixel u reads logit scale*u+offset.
    scale, offset = source_affine(logits_length, input_length, resize)
    source = (position * scale + offset).clamp(0.0, logits_length - 1)
    lower = source.floor().to(torch.int64).clamp(max=logits_length - 1)
    upper = (lower + 1).clamp(max=logits_length - 1)
    weight = (source - lower.to(torch.float64)).to(torch.float32)
    return AxisSampling(lower.to(device), upper.to(device), weight.to(device),
                        (1.0 - weight).to(device))


def lerp(low: torch.Tensor, high: torch.Tensor, weight: torch.Tensor,
         complement: torch.Tensor) -> torch.Tensor:
    """``low * complement + high * weight``: the one arithmetic of every interpolation here.

    One rounding per product and per sum, monotone in ``low`` and ``high``; the bilinear value
    is the lerp along the row of both rows, then between them.
    """
    return low * complement + high * weight


class FrameLabels(NamedTuple):
    """Labels at a frame's resolution and the number of pixels of each class."""

    labels: torch.Tensor  # HxW uint8
    counts: torch.Tensor  # int64 [classes]


def exact_labels(logits: torch.Tensor, rows: AxisSampling, columns: AxisSampling
                 ) -> FrameLabels:
    """The labels (HxW uint8) at the frame's resolution, exactly, and each class's pixels.

    The counts come from the same construction (each quad's block of pixels), without
    another pass over the frame.

    Args:
        logits: ``[C, h, w]`` logits at the network's resolution (any float type).
        rows: The frame's rows (:func:`axis_sampling` along the height).
        columns: The frame's columns (along the width).
    """
    used_rows = int(rows.upper[-1]) + 1
    used_columns = int(columns.upper[-1]) + 1
    return _labels(logits[:, :used_rows, :used_columns], rows, columns)


@functools.lru_cache(maxsize=64)
def nearest_samples(frame_length: int, samples: int, device: torch.device) -> torch.Tensor:
    """int64 [frame length]: the sample (of ``samples`` spread evenly) each pixel falls in.

    Pixel ``i``'s centre lies in sample ``floor((i + 0.5) * samples / frame_length)``: a
    nearest-neighbour resize with pixel centres aligned. Cached; read, never written.
    """
    index = torch.arange(frame_length, dtype=torch.float64)
    nearest = ((index + 0.5) * (samples / frame_length)).floor().to(torch.int64)
    return nearest.clamp_(0, samples - 1).to(device)


def top_probability_image(logits: torch.Tensor, frame_size: tuple[int, int],
                          region_size: tuple[int, int], input_length: int, resize: str
                          ) -> torch.Tensor:
    """Top-class probability x 255 (HxW uint8 at the frame's size), at the network's detail.

    Along each axis the probability is computed at ``min(frame, region)`` points spread over
    the frame's region of the network input (:func:`axis_sampling` with that many
    "pixels"): the input's own pixels when the frame is larger, the frame's otherwise. Each
    frame pixel takes the value of the point its centre falls in (:func:`nearest_samples`).

    Args:
        logits: ``[C, h, w]`` logits at the network's resolution (any float type).
        frame_size: The frame's (height, width).
        region_size: The (height, width) of the frame's region in the network input.
        input_length: The network input's side.
        resize: The model's resize convention from its logits to its input.
    """
    samplings = [axis_sampling(min(frame, region), region, input_length, cells, resize,
                               logits.device)
                 for frame, region, cells in zip(frame_size, region_size, logits.shape[1:])]
    probability = top_probability(logits, *samplings)
    for dimension, (frame, sampling) in enumerate(zip(frame_size, samplings)):
        samples = sampling.lower.numel()
        if samples != frame:
            probability = probability.index_select(
                dimension, nearest_samples(frame, samples, logits.device))
    return probability


def top_probability(logits: torch.Tensor, rows: AxisSampling, columns: AxisSampling
                    ) -> torch.Tensor:
    """Top-class probability x 255 of every sampled pixel, every class interpolated (uint8).

    Each row of logits is interpolated across the columns once; the output rows between two
    rows of logits (a run: they read the same two) are interpolated into a buffer of a few
    runs, whose softmax denominators are then taken in one go.
    """
    used_rows = int(rows.upper[-1]) + 1
    grid = logits[:, :used_rows, :int(columns.upper[-1]) + 1].float()
    classes, width = grid.shape[0], columns.lower.numel()
    across: dict[int, torch.Tensor] = {}  # row of logits -> [C, 1, W] across the columns

    def row_across(row: int) -> torch.Tensor:
        if row not in across:
            cells = grid[:, row]
            across[row] = lerp(cells.index_select(1, columns.lower),
                               cells.index_select(1, columns.upper), columns.weight,
                               columns.complement)[:, None]
        return across[row]

    total = rows.lower.numel()
    probability = torch.empty((total, width), dtype=torch.uint8, device=grid.device)
    step = max(1, min(total, CHUNK_ELEMENTS // (classes * width)))
    values = torch.empty((classes, step, width), device=grid.device)  # one chunk's rows
    # Plain lists: no device round trip per run on CUDA.
    lower_rows, upper_rows = rows.lower.tolist(), rows.upper.tolist()
    for begin in range(0, total, step):
        end = min(total, begin + step)
        # Each run of output rows between the same two rows of logits, into the chunk.
        start = begin
        while start < end:
            row = lower_rows[start]
            stop = start + 1
            while stop < end and lower_rows[stop] == row:
                stop += 1
            for key in [key for key in across if key < row]:
                del across[key]
            part = slice(start, stop)
            torch.add(row_across(row) * rows.complement[part, None],
                      row_across(upper_rows[start]) * rows.weight[part, None],
                      out=values[:, start - begin:stop - begin])
            start = stop
        chunk = values[:, :end - begin]
        normaliser = chunk.sub_(chunk.amax(dim=0)).exp_().sum(dim=0)
        probability[begin:end] = (255.0 / normaliser).round_().to(torch.uint8)
    return probability


def _labels(logits: torch.Tensor, rows: AxisSampling, columns: AxisSampling) -> FrameLabels:
    """The exact labels of ``logits`` (cropped to the cells the frame reads), and counts."""
    classes, used_rows, used_columns = logits.shape
    # The first arg-max of every cell: max() over the outer (class) dimension rather than
    # argmax(), for speed (torch documents max()'s indices as the first); what the whole
    # upsampling costs: docs/benchmarks.md#upsample-exact-or-dense.
    best = logits.max(dim=0).indices
    # Every pixel the arg-max of its quad's top-left cell: the label wherever the quad is
    # uniform (frame rows reading one row of cells are consecutive: repeat each row).
    row_counts = torch.bincount(rows.lower, minlength=used_rows)
    column_counts = torch.bincount(columns.lower, minlength=used_columns)
    labels = best.to(torch.uint8).index_select(1, columns.lower).repeat_interleave(
        row_counts, dim=0, output_size=rows.lower.numel())
    # Each cell's class counted once per pixel of its quad's block.
    block_sizes = row_counts[:, None] * column_counts[None, :]
    counts = torch.zeros(classes, dtype=torch.int64, device=logits.device)
    counts.scatter_add_(0, best.reshape(-1), block_sizes.reshape(-1))
    # Each quad: the cell at its top left and the cells below, right and diagonal (clamped).
    below = torch.arange(1, used_rows + 1, device=logits.device).clamp_(max=used_rows - 1)
    right = torch.arange(1, used_columns + 1, device=logits.device).clamp_(max=used_columns - 1)
    best_below = best[below]
    quads = (block_sizes > 0) & (
        (best != best_below) | (best != best[:, right]) | (best != best_below[:, right]))
    quad_rows, quad_columns = torch.nonzero(quads, as_tuple=True)
    if quad_rows.numel() == 0:
        return FrameLabels(labels, counts)
    # The blocks resolved pixel by pixel are counted again from their new labels.
    counts.scatter_add_(0, best[quad_rows, quad_columns],
                        -block_sizes[quad_rows, quad_columns])
    corner_cells = torch.stack([quad_rows * used_columns + quad_columns,
                                quad_rows * used_columns + right[quad_columns],
                                below[quad_rows] * used_columns + quad_columns,
                                below[quad_rows] * used_columns + right[quad_columns]])
    # Channels last for the corner gathers: every cell's class vector is contiguous.
    cells = logits.permute(1, 2, 0).float().contiguous()
    corners = cells.view(-1, classes)[corner_cells]  # [4, Q, C]
    threshold = corners.amin(dim=0).amax(dim=1, keepdim=True)
    candidates = corners.amax(dim=0) >= threshold  # [Q, C]: the classes that can still win
    _Quads(labels, counts, corners, candidates, quad_rows, quad_columns, rows, columns,
           row_counts, column_counts).resolve()
    return FrameLabels(labels, counts)


class _Quads:
    """The quads to resolve pixel by pixel, grouped by their number of candidates.

    A quad's pixels form a block (the frame rows that read its top row, by the columns that
    read its left column). Each chunk of quads is laid out as ``[quads, block rows, block
    columns, candidates]``, every block as large as the largest: a smaller block repeats its
    last row and column, whose pixels then get the same label twice.
    """

    def __init__(self, labels: torch.Tensor, counts: torch.Tensor, corners: torch.Tensor,
                 candidates: torch.Tensor, quad_rows: torch.Tensor, quad_columns: torch.Tensor,
                 rows: AxisSampling, columns: AxisSampling, row_counts: torch.Tensor,
                 column_counts: torch.Tensor) -> None:
        self.labels = labels
        self.class_pixels = counts
        self.corners = corners
        self.rows, self.columns = rows, columns
        self.quad_rows, self.quad_columns = quad_rows, quad_columns
        # Candidate classes of every quad, ascending, one after another (CSR).
        self.candidate_counts = candidates.sum(dim=1)
        self.classes = torch.nonzero(candidates, as_tuple=True)[1]
        self.starts = torch.cumsum(self.candidate_counts, 0) - self.candidate_counts
        # Frame pixels per row / column of cells (each quad's block), as _labels counted them.
        self.block_rows = row_counts[quad_rows]
        self.block_columns = column_counts[quad_columns]
        self.first_row = (torch.cumsum(row_counts, 0) - row_counts)[quad_rows]
        self.first_column = (torch.cumsum(column_counts, 0) - column_counts)[quad_columns]
        self.block_shape = (int(self.block_rows.max()), int(self.block_columns.max()))

    def resolve(self) -> None:
        """Label every pixel of every quad, and count them."""
        # Every quad here has at least two candidates (the arg-max classes of its corners).
        # Padding every quad's list to the next power of two keeps the groups few.
        widths = torch.pow(2, torch.ceil(torch.log2(self.candidate_counts.double()))).long()
        block = self.block_shape[0] * self.block_shape[1]
        for width in torch.unique(widths).tolist():
            members = torch.nonzero(widths == width, as_tuple=True)[0]
            step = max(1, CHUNK_ELEMENTS // (block * width))
            for begin in range(0, members.numel(), step):
                self._resolve_chunk(members[begin:begin + step], int(width))

    def _resolve_chunk(self, members: torch.Tensor, width: int) -> None:
        # Candidate table [M, width]: a short list is padded with its last class, which
        # comes after the real one and so never changes which position the arg-max takes.
        offsets = torch.arange(width, device=members.device)
        counts = self.candidate_counts[members, None]
        last = self.starts[members, None] + counts - 1
        classes = self.classes[(self.starts[members, None] + offsets).minimum(last)]
        # Candidates first, [width, M, 1, 1]: the arg-max is then torch's max() over the
        # outer dimension rather than an inner argmax, for speed (as in _labels).
        top_left, top_right, bottom_left, bottom_right = \
            self.corners[:, members[:, None], classes].permute(0, 2, 1)[..., None, None]
        # Block pixel (i, j) of a quad, clamped to its own block: [M, rows, 1] and [M, 1, cols].
        span = [torch.arange(size, device=members.device) for size in self.block_shape]
        y = (self.first_row[members, None] +
             span[0].minimum(self.block_rows[members, None] - 1))[:, :, None]
        x = (self.first_column[members, None] +
             span[1].minimum(self.block_columns[members, None] - 1))[:, None, :]
        weight, complement = self.columns.weight[x], self.columns.complement[x]
        interpolated = lerp(lerp(top_left, top_right, weight, complement),
                            lerp(bottom_left, bottom_right, weight, complement),
                            self.rows.weight[y], self.rows.complement[y])  # [width, M, rows, cols]
        # The first position of the largest value, as argmax (torch documents max()'s indices
        # as the first maximal value's).
        position = interpolated.max(dim=0).indices  # [M, rows, cols]
        chosen = torch.gather(classes, 1, position.reshape(len(members), -1)).reshape(-1)
        self.labels.view(-1)[(y * self.labels.shape[1] + x).reshape(-1)] = \
            chosen.to(torch.uint8)
        # Each pixel counted once: the repeats that pad a smaller block weigh nothing.
        inside = ((span[0] < self.block_rows[members, None])[:, :, None]
                  & (span[1] < self.block_columns[members, None])[:, None, :])
        self.class_pixels += torch.bincount(
            chosen, weights=inside.reshape(-1).to(torch.float64),
            minlength=self.class_pixels.numel()).to(torch.int64)
