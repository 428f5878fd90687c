"""Emulate a uint8 TFLite graph's activation quantization in a float model.

A quantization-aware uint8 graph rounds every activation to 256 levels (``(q - zero_point) *
scale``, q in 0..255) and clamps it to that range; the TFLite interpreter computes that way,
while a dequantized float port does not. With a table ``{module name: (scale, zero_point)}``
read from the graph, :func:`quantize_activations` makes each listed module's output pass
through ``torch.fake_quantize_per_tensor_affine`` (a forward hook; the state dict is
unchanged); the name ``''`` stands for the model's own output (the graph's resized logits
before its arg-max, where equal uint8 values break ties towards the lower class id as the
interpreter does). A hook fires when its module is called: the DeepLabV3+ decoder's tap block,
run through ``forward_with_depthwise``, keeps its residual sum in float.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, TypeVar

import torch
from torch import nn

#: Module name -> (scale, zero point) of a uint8 activation.
ActivationTable = Mapping[str, tuple[float, int]]
Model = TypeVar('Model', bound=nn.Module)


def _fake_quantize(scale: float, zero_point: int, module: nn.Module, inputs: Any,
                   output: torch.Tensor) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(output, scale, zero_point, 0, 255)


def quantize_activations(model: Model, table: ActivationTable | None) -> Model:
    """Round the outputs of the modules named in ``table`` to their uint8 grids.

    Raises:
        ValueError: a name in ``table`` is not a module of ``model``.
    """
    if not table:
        return model
    modules = dict(model.named_modules())
    for name, (scale, zero_point) in table.items():
        if name not in modules:
            raise ValueError(f'activation quantization names {name!r}, which is not a module '
                             f'of {type(model).__name__}')
        modules[name].register_forward_hook(partial(_fake_quantize, float(scale),
                                                    int(zero_point)))
    return model
