"""Post-processing on the device: logits -> labels at the frame's resolution, and extras.

Two ways back to full resolution (``upsample``):

- ``'labels'`` (default): arg-max on the network-resolution logits of the frame's region,
  then a nearest-neighbour resize of the uint8 label image to the frame size. Cheap at any
  frame size.
- ``'logits'``: bilinear resize of the logits to the frame size, then arg-max. Slightly
  smoother borders, but costs classes x frame pixels of memory and time.

The measured difference is in the README ("Models and accuracy").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deeplab_ros.core.preprocess import Placement

UPSAMPLE_MODES = ('labels', 'logits')


def labels_and_confidence(logits: torch.Tensor, place: Placement, *, upsample: str = 'labels',
                          confidence: bool = False
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (HxW uint8) and optional confidence (HxW uint8) for one frame's logits.

    Args:
        logits: ``[C, S, S]`` logits of the padded network input.
        place: Where the frame sits in that input.
        upsample: ``'labels'`` or ``'logits'`` (see module docstring).
        confidence: Also return the top-class probability x 255.
    """
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f'upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}')
    region = logits[:, :place.height, :place.width].unsqueeze(0)
    full_size = (place.frame_height, place.frame_width)
    resize_needed = (place.height, place.width) != full_size
    if upsample == 'logits' and resize_needed:
        region = F.interpolate(region.float(), size=full_size, mode='bilinear',
                               align_corners=False)
        resize_needed = False
    probability = None
    if confidence:
        top, labels = torch.softmax(region.float(), dim=1).max(dim=1)
        probability = (top * 255.0).round_().to(torch.uint8)
    else:
        labels = region.argmax(dim=1)
    labels = labels.to(torch.uint8)
    if resize_needed:
        labels = F.interpolate(labels.unsqueeze(0), size=full_size,
                               mode='nearest-exact').squeeze(0)
        if probability is not None:
            probability = F.interpolate(probability.unsqueeze(0), size=full_size,
                                        mode='nearest-exact').squeeze(0)
    return labels[0], (probability[0] if probability is not None else None)


def class_fractions(labels: torch.Tensor, num_classes: int) -> dict[int, float]:
    """Fraction of pixels of every class present in an HxW label tensor."""
    counts = torch.bincount(labels.reshape(-1).to(torch.int64), minlength=num_classes)
    total = float(labels.numel())
    return {int(index): float(count) / total
            for index, count in enumerate(counts.tolist()) if count > 0}


def colorize(labels: torch.Tensor, palette_lut: torch.Tensor) -> torch.Tensor:
    """HxW uint8 labels -> HxWx3 uint8 colours through a (256, 3) look-up table."""
    return palette_lut[labels.to(torch.int64)]


def blend(frame_chw: torch.Tensor, color_hwc: torch.Tensor, alpha: float) -> torch.Tensor:
    """Overlay: ``(1 - alpha) * frame + alpha * colour``, HxWx3 uint8."""
    frame_hwc = frame_chw[0].permute(1, 2, 0)
    if alpha <= 0.0:
        return frame_hwc.contiguous()
    mixed = frame_hwc.to(torch.float32) * (1.0 - alpha) + color_hwc.to(torch.float32) * alpha
    return mixed.round_().to(torch.uint8)
