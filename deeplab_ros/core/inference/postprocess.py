"""Post-processing on the device: logits -> labels at the frame's resolution, and extras.

Two ways back to the frame's resolution (``upsample``):

- ``'exact'`` (default): the network ends at its own logits' resolution, and each frame
  pixel gets the arg-max of the model's bilinearly interpolated logits at that pixel (the
  model's resize convention, through the letterbox placement), computed only where the
  answer is not already known (:mod:`~deeplab_ros.core.inference.exact_upsample`). Exact at
  every frame size, and cheaper than either resize below. The confidence, where asked, is the
  top-class probability of the same interpolated logits at the detail the network saw: at
  the input's pixels of the frame's region (the frame's own where it is smaller), each frame
  pixel taking the value of the one its centre falls in, as the dense path gives it.
- ``'dense'``: the network resizes its logits to its whole input (the graph ends in that
  resize); arg-max on the frame's region there, then a nearest-neighbour resize of the
  uint8 labels to the frame size. Kept for comparison.

Measurements: ``docs/benchmarks.md#upsample-exact-or-dense``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

try:  # optional: only the CPU's label resize uses it, for speed (resize_nearest)
    import cv2
except ImportError:
    cv2 = None  # type: ignore[assignment]

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.inference.exact_upsample import (
    axis_sampling, exact_labels, top_probability_image)
from deeplab_ros.core.inference.preprocess import Placement

UPSAMPLE_MODES = ('exact', 'dense')


def parse_upsample(mode: str) -> str:
    """The upsampling setting, checked: one of :data:`UPSAMPLE_MODES`.

    Raises:
        InvalidSettingError: ``mode`` is not one of them.
    """
    if mode not in UPSAMPLE_MODES:
        raise InvalidSettingError(f'upsample must be one of {UPSAMPLE_MODES}, got {mode!r}',
                                  setting='upsample')
    return mode


def full_resolution_network(upsample: str) -> bool:
    """Whether the ``upsample`` mode runs the network with its final resize to the input."""
    return parse_upsample(upsample) == 'dense'


class LabelsAtFrame(NamedTuple):
    """One frame's post-processed outputs at its own resolution."""

    labels: torch.Tensor              # HxW uint8
    counts: torch.Tensor              # int64 [>= classes]: pixels of each class
    confidence: torch.Tensor | None   # HxW uint8 top-class probability x 255, when asked


def labels_at_frame(logits: torch.Tensor, place: Placement, *, upsample: str = 'exact',
                    resize: str = 'half_pixel', input_size: int | None = None,
                    confidence: bool = False) -> LabelsAtFrame:
    """Labels, class pixel counts and optional confidence for one frame's logits.

    Args:
        logits: ``[C, h, w]`` logits of the padded network input: at the network's own
            resolution for ``'exact'``, at the input's (``[C, S, S]``) for ``'dense'``.
        place: Where the frame sits in the network input.
        upsample: ``'exact'`` or ``'dense'`` (see module docstring).
        resize: The model's resize convention from its logits to its input (``'exact'``).
        input_size: The network input's side ``S`` (``'exact'``; default: the logits' side).
        confidence: Also return the top-class probability x 255.
    """
    if parse_upsample(upsample) == 'exact':
        side = input_size or logits.shape[-1]
        rows = axis_sampling(place.frame_height, place.height, side, logits.shape[1], resize,
                             logits.device)
        columns = axis_sampling(place.frame_width, place.width, side, logits.shape[2], resize,
                                logits.device)
        probability = top_probability_image(
            logits, (place.frame_height, place.frame_width), (place.height, place.width),
            side, resize) if confidence else None
        labels, counts = exact_labels(logits, rows, columns)
        return LabelsAtFrame(labels, counts, probability)
    labels, probability = _dense_labels(logits, place, confidence)
    return LabelsAtFrame(labels, class_counts(labels, logits.shape[0]), probability)


def _dense_labels(logits: torch.Tensor, place: Placement, confidence: bool
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``'dense'``: arg-max of the frame's region of input-size logits, nearest resize."""
    region = logits[:, :place.height, :place.width].unsqueeze(0)
    full_size = (place.frame_height, place.frame_width)
    # max() returning indices rather than argmax() over the channel dimension, for speed on
    # the CPU (docs/benchmarks.md#upsample-exact-or-dense); the top probability follows from
    # the top logit without a full softmax: p_top = 1 / sum_c exp(l_c - l_top).
    top, labels = region.max(dim=1)
    probability = None
    if confidence:
        normaliser = torch.exp(region.float() - top.float().unsqueeze(1)).sum(dim=1)
        probability = (255.0 / normaliser).round_().to(torch.uint8)
    labels = labels.to(torch.uint8)
    labels = labels[0]
    probability = probability[0] if probability is not None else None
    if (place.height, place.width) != full_size:
        labels = resize_nearest(labels, full_size)
        if probability is not None:
            probability = resize_nearest(probability, full_size)
    return labels, probability


def resize_nearest(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of an HxW uint8 tensor (pixel-centre aligned).

    On the CPU this goes through OpenCV's ``INTER_NEAREST_EXACT`` when OpenCV is installed,
    chosen over torch's uint8 path for speed (docs/benchmarks.md#upsample-exact-or-dense:
    the ``dense`` path ends in this resize); elsewhere, and without OpenCV,
    ``F.interpolate(..., mode='nearest-exact')``. The two round the scale differently and
    pick the neighbouring pixel at a few places for some sizes.
    """
    if image.device.type == 'cpu' and cv2 is not None:
        resized = cv2.resize(image.numpy(), (size[1], size[0]),
                             interpolation=cv2.INTER_NEAREST_EXACT)
        return torch.from_numpy(resized)
    return F.interpolate(image[None, None], size=size, mode='nearest-exact')[0, 0]


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels of every class (int64, length >= ``num_classes``) in an HxW label tensor."""
    flat = labels.reshape(-1)
    if flat.dtype != torch.uint8:
        flat = flat.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes)


def fractions_from_counts(counts: np.ndarray, total: int) -> dict[int, float]:
    """{class id: fraction of ``total`` pixels} for the classes with a non-zero count."""
    return {index: count / total for index, count in enumerate(counts.tolist()) if count > 0}


def colorize(labels: torch.Tensor, palette_lut: torch.Tensor) -> torch.Tensor:
    """Map HxW uint8 labels to HxWx3 uint8 colours through a (256, 3) look-up table."""
    return palette_lut[labels.to(torch.int64)]


def blend(frame_chw: torch.Tensor, color_hwc: torch.Tensor, alpha: float,
          clear: torch.Tensor | None = None) -> torch.Tensor:
    """Overlay: ``(1 - alpha) * frame + alpha * colour``, HxWx3 uint8.

    Pixels where ``clear`` (HxW bool) is true keep the frame unchanged, so the background
    class does not darken the picture.
    """
    frame_hwc = frame_chw[0].permute(1, 2, 0)
    if alpha <= 0.0:
        return frame_hwc.contiguous()
    mixed = frame_hwc.to(torch.float32) * (1.0 - alpha) + color_hwc.to(torch.float32) * alpha
    mixed = mixed.round_().to(torch.uint8)
    if clear is not None:
        mixed = torch.where(clear.unsqueeze(-1), frame_hwc, mixed)
    return mixed
