"""Bilinear resizing the three ways segmentation graphs do it.

- ``'align_corners'``: corner pixels aligned (DeepLab's TensorFlow graphs, ``align_corners=
  True``);
- ``'half_pixel'``: pixel centres aligned (PyTorch's ``align_corners=False``);
- ``'tf_legacy'``: TensorFlow 1's default (``align_corners=False`` without half-pixel
  centres): output pixel ``i`` samples input position ``i * in / out``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Accepted resize modes.
RESIZE_MODES = ('align_corners', 'half_pixel', 'tf_legacy')


def _legacy_axis(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    length = x.shape[dim]
    if length == size:
        return x
    position = torch.arange(size, device=x.device, dtype=torch.float32) * (length / size)
    lower = position.floor().long().clamp(max=length - 1)
    upper = (lower + 1).clamp(max=length - 1)
    shape = [1] * x.ndim
    shape[dim] = size
    weight = (position - lower).to(x.dtype).reshape(shape)
    return x.index_select(dim, lower) * (1 - weight) + x.index_select(dim, upper) * weight


def resize_bilinear(x: torch.Tensor, size: tuple[int, int] | torch.Size, mode: str
                    ) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size`` (height, width) with the ``mode`` convention."""
    height, width = int(size[0]), int(size[1])
    if mode == 'tf_legacy':
        return _legacy_axis(_legacy_axis(x, 2, height), 3, width)
    if mode not in RESIZE_MODES:
        raise ValueError(f'resize mode must be one of {RESIZE_MODES}, got {mode!r}')
    return F.interpolate(x, size=(height, width), mode='bilinear',
                         align_corners=mode == 'align_corners')


def source_affine(input_length: int, output_length: int, mode: str) -> tuple[float, float]:
    """Where a ``mode`` resize from ``input_length`` to ``output_length`` samples its input.

    Returns ``(scale, offset)``: output pixel ``i`` (of ``output_length``) reads input position
    ``scale * i + offset``, clamped to ``[0, input_length - 1]``; between two input pixels
    the value is their linear interpolation. Continuous ``i`` extends the convention between
    output pixels.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f'resize mode must be one of {RESIZE_MODES}, got {mode!r}')
    if mode == 'align_corners':
        scale = (input_length - 1) / (output_length - 1) if output_length > 1 else 0.0
        return scale, 0.0
    scale = input_length / output_length
    return scale, (0.5 * scale - 0.5 if mode == 'half_pixel' else 0.0)
