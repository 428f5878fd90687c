"""Logits at the network's own resolution, and how they map back to the input's pixels.

Every registered model computes its logits at a fraction of the input's resolution (stride 4
for the DeepLabV3+ decoders, the head's stride otherwise) and, as its last operation, resizes
them bilinearly to the input size in the convention of the graph it was ported from. A model
records that convention as ``logits_resize`` (one of
:data:`~deeplab_ros.core.models.resize.RESIZE_MODES`) and exposes the logits before the
resize as ``forward_logits(x)``; ``forward(x)`` (training, parity checks, full-resolution
exports) keeps returning the logits at the input's resolution.

The segmenter runs a model as :class:`LogitsOnly` (in every backend, and in the
ONNX export it runs), and brings the labels to each frame's resolution itself
(:mod:`~deeplab_ros.core.inference.exact_upsample`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from deeplab_ros.core.models.resize import resize_bilinear, RESIZE_MODES


@runtime_checkable
class LogitsModel(Protocol):
    """What a registered model offers besides ``forward``."""

    logits_resize: str

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the network's own resolution."""


class LogitsNetwork(nn.Module):
    """Base of the networks defined here: ``forward`` = ``forward_logits``, then the resize.

    Subclasses set :attr:`logits_resize` and implement :meth:`forward_logits`;
    :attr:`channels_last_logits` makes the full-size resize write channels-last memory (its
    cost is the same, and an arg-max over classes that follows reads contiguous memory).
    """

    logits_resize: str = 'half_pixel'
    channels_last_logits: bool = False

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` at the network's own resolution."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, H, W]`` at the input's resolution."""
        logits = self.forward_logits(x)
        if self.channels_last_logits:
            logits = logits.contiguous(memory_format=torch.channels_last)
        return resize_bilinear(logits, x.shape[-2:], self.logits_resize)


def logits_resize(model: nn.Module) -> str:
    """The resize convention that maps ``model``'s logits back to its input.

    A module without ``forward_logits`` (not a registered model) is taken to return its
    logits at its input's resolution, where every convention maps them one to one:
    ``'half_pixel'``.

    Raises:
        ValueError: the model names a convention that is not one of ``RESIZE_MODES``.
    """
    if not isinstance(model, LogitsModel):
        return 'half_pixel'
    if model.logits_resize not in RESIZE_MODES:
        raise ValueError(f'{type(model).__name__}.logits_resize must be one of {RESIZE_MODES}, '
                         f'got {model.logits_resize!r}')
    return model.logits_resize


class LogitsOnly(nn.Module):
    """A model's network without its final resize (the same parameters and output hooks).

    The model's own forward hooks (e.g. the uint8 output emulation of
    :mod:`~deeplab_ros.core.models.activation_quantization`) apply to these logits.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.logits_resize = logits_resize(model)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, classes, h, w]`` of ``x`` at the network's own resolution."""
        if not isinstance(self.model, LogitsModel):
            return self.model(x)  # its logits are at the input's resolution
        logits = self.model.forward_logits(x)
        for hook in self.model._forward_hooks.values():
            result = hook(self.model, (x,), logits)
            logits = logits if result is None else result
        return logits
