"""Convs of a TFLite graph as logical layers, and their transfer into a PyTorch model's convs.

Each conv is read as one *logical* conv with what surrounds it (:func:`logical_convs`):
weights behind DEQUANTIZE ops (dynamic-range int8), atrous convs written as
SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND (the block size is the dilation; the paddings
must be the symmetric "SAME" ones), batch norm left as MUL + ADD by a per-channel constant
(folded into the conv), and the activation fused into the last op or, in uint8 graphs, implied
by an output range that starts at zero. Activations that TFLite writes as separate ops are
resolved by :func:`with_separate_activation` (hard-swish; the hard sigmoid of
squeeze-and-excite gates).

On the model's side, :func:`convs_with_activations` lists a module's convs in graph order with
the activation that follows each, and :func:`assign_checked` copies one logical conv into one
model conv after checking shape, stride, dilation, groups and activation.

Layouts: TFLite conv weights are OHWI (PyTorch OIHW: ``transpose(0, 3, 1, 2)``), depthwise
weights 1HWC (PyTorch (C, 1, H, W): ``transpose(3, 0, 1, 2)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeplab_ros.core.weights.convert.tflite_graph import (
    producer, single_consumer, TFLiteConversionError, TFLiteGraph, TFLiteOp)

#: The name of each activation module as the converters (and ``LogicalConv.activation``)
#: spell it.
ACTIVATION_NAMES: dict[type[nn.Module], str] = {
    nn.ReLU: 'relu', nn.ReLU6: 'relu6', nn.Hardswish: 'hardswish', nn.Hardsigmoid: 'hardsigmoid'}


@dataclass
class LogicalConv:
    """A conv with its atrous wrapping, unfolded batch norm and activation resolved."""

    op: TFLiteOp
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    dilation: int
    activation: str
    input: int
    output: int

    @property
    def where(self) -> str:
        """The conv op, for error messages."""
        return f'op {self.op.index} ({self.op.name})'


def _channel_constant(graph: TFLiteGraph, op: TFLiteOp | None, channels: int
                      ) -> np.ndarray | None:
    """The per-channel constant of a MUL/ADD by a constant vector, or None."""
    if op is None or len(op.inputs) != 2 or op.inputs[1] < 0:
        return None
    if graph.shapes[op.inputs[1]] != (channels,) or not graph.is_constant(op.inputs[1]):
        return None
    return graph.tensor(op.inputs[1])


def logical_convs(graph: TFLiteGraph) -> list[LogicalConv]:
    """Every CONV_2D / DEPTHWISE_CONV_2D as a :class:`LogicalConv`, in graph order."""
    result = []
    for op in graph.ops:
        if op.name not in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
            continue
        weight = graph.tensor(op.inputs[1])
        weight = weight.transpose(3, 0, 1, 2) if op.name == 'DEPTHWISE_CONV_2D' \
            else weight.transpose(0, 3, 1, 2)
        channels = weight.shape[0]
        bias = (graph.tensor(op.inputs[2]).reshape(-1) if len(op.inputs) > 2
                and op.inputs[2] >= 0 else np.zeros(channels, np.float32))
        source, output, dilation = op.inputs[0], op.outputs[0], op.options['dilation']
        activation = op.options['activation']
        space_to_batch = producer(graph, source)
        if space_to_batch is not None and space_to_batch.name == 'SPACE_TO_BATCH_ND':
            dilation = _atrous_rate(graph, space_to_batch, op, weight.shape[-1])
            source = space_to_batch.inputs[0]
            batch_to_space = single_consumer(graph, output, 'BATCH_TO_SPACE_ND')
            if batch_to_space is None:
                raise TFLiteConversionError(f'op {op.index}: SPACE_TO_BATCH_ND without its '
                                            'BATCH_TO_SPACE_ND')
            output = batch_to_space.outputs[0]
        multiply = single_consumer(graph, output, 'MUL')
        scale = _channel_constant(graph, multiply, channels)
        if multiply is not None and scale is not None and activation == 'none':
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = bias * scale
            output = multiply.outputs[0]
        add = single_consumer(graph, output, 'ADD')
        shift = _channel_constant(graph, add, channels)
        if add is not None and shift is not None and activation == 'none':
            bias = bias + shift
            output, activation = add.outputs[0], add.options['activation']
        if activation == 'none' and graph.output_range_starts_at_zero(output):
            activation = 'relu*'  # uint8: the quantization range clamps at 0 (and its top)
        result.append(LogicalConv(op, np.ascontiguousarray(weight, dtype=np.float32),
                                  bias.astype(np.float32), op.options['stride'], dilation,
                                  activation, source, output))
    return result


def _atrous_rate(graph: TFLiteGraph, space_to_batch: TFLiteOp, conv: TFLiteOp,
                 kernel: int) -> int:
    """The dilation a SPACE_TO_BATCH_ND/BATCH_TO_SPACE_ND pair gives ``conv``; checks SAME."""
    block = graph.integers(space_to_batch.inputs[1]).reshape(-1)
    paddings = graph.integers(space_to_batch.inputs[2])
    rate = int(block[0])
    needed = (kernel - 1) * rate // 2
    if (len(set(block.tolist())) != 1 or conv.options['padding'] != 'valid'
            or conv.options['dilation'] != 1 or any(int(row[0]) != needed for row in paddings)):
        raise TFLiteConversionError(
            f'op {conv.index}: atrous conv (block {block.tolist()}, paddings '
            f'{paddings.tolist()}) is not a SAME-padded dilated conv')
    return rate


def _is_scalar(graph: TFLiteGraph, index: int, value: float) -> bool:
    return (index >= 0 and graph.shapes[index] in ((), (1,)) and graph.is_constant(index)
            and abs(float(graph.tensor(index).reshape(-1)[0]) - value) < 1e-4)


def with_separate_activation(graph: TFLiteGraph, conv: LogicalConv) -> LogicalConv:
    """``conv`` with a following HARD_SWISH, or ReLU6 + MUL by 1/6, taken as its activation.

    TensorFlow's hard sigmoid ``relu6(x + 3) / 6`` has its ``+ 3`` folded into the conv bias,
    which is taken back out (``nn.Hardsigmoid`` adds it).
    """
    if conv.activation == 'none':
        hard_swish = single_consumer(graph, conv.output, 'HARD_SWISH')
        if hard_swish is not None:
            return dataclasses.replace(conv, activation='hardswish',
                                       output=hard_swish.outputs[0])
    if conv.activation == 'relu6':
        scale = single_consumer(graph, conv.output, 'MUL')
        if scale is not None and _is_scalar(graph, scale.inputs[1], 1 / 6):
            return dataclasses.replace(conv, activation='hardsigmoid', bias=conv.bias - 3.0,
                                       output=scale.outputs[0])
    return conv


def fed_by(convs: list[LogicalConv], tensor: int, path: Path, what: str) -> LogicalConv:
    """The one conv whose input is ``tensor`` (``what`` names it in the error otherwise)."""
    found = [conv for conv in convs if conv.input == tensor]
    if len(found) != 1:
        raise TFLiteConversionError(f'{path}: expected one {what}, found {len(found)}')
    return found[0]


def convs_with_activations(module: nn.Module) -> list[tuple[nn.Conv2d, str]]:
    """List the convs of ``module`` with the activation that follows each.

    The convs come in execution (depth-first) order, which is the graph's order, each with
    the name (:data:`ACTIVATION_NAMES`) of the activation module that follows it (``'none'``
    if none does).
    """
    children = list(module.children())
    result: list[tuple[nn.Conv2d, str]] = []
    for position, child in enumerate(children):
        if isinstance(child, nn.Conv2d):
            following = children[position + 1] if position + 1 < len(children) else None
            activation = 'none' if following is None else \
                ACTIVATION_NAMES.get(type(following), 'none')
            result.append((child, activation))
        else:
            result.extend(convs_with_activations(child))
    return result


def model_conv(model: nn.Module, name: str) -> nn.Conv2d:
    """The conv of ``model`` at the dotted submodule path ``name`` (``'head.logits'``)."""
    conv = model.get_submodule(name)
    if not isinstance(conv, nn.Conv2d):
        raise TFLiteConversionError(f'{name} of {type(model).__name__} is not a conv')
    return conv


def backbone_convs(model: nn.Module) -> list[tuple[nn.Conv2d, str]]:
    """:func:`convs_with_activations` of ``model.backbone``."""
    return convs_with_activations(model.get_submodule('backbone'))


def depthwise_tap_position(model: nn.Module, block: int) -> int:
    """Position among :func:`backbone_convs` of backbone block ``block``'s depthwise conv.

    That conv's activation is what a decoder (or a low-level branch) reads.
    """
    depthwise = getattr(model.get_submodule(f'backbone.{block}'), 'depthwise_conv', None)
    if not isinstance(depthwise, nn.Conv2d):
        raise TFLiteConversionError(f'backbone block {block} of {type(model).__name__} has no '
                                    'depthwise conv')
    return [conv for conv, _ in backbone_convs(model)].index(depthwise)


def assign_checked(conv: nn.Conv2d, source: LogicalConv, activation: str) -> None:
    """Copy ``source`` into ``conv`` after checking that they are the same layer.

    ``activation`` is the one that follows ``conv`` in the model; a uint8 graph's implied
    ReLU (``'relu*'``) matches a ReLU or a ReLU6.
    """
    theirs_activation = source.activation
    if theirs_activation == 'relu*' and activation in ('relu', 'relu6'):
        theirs_activation = activation
    checks = [('weight shape', tuple(source.weight.shape), tuple(conv.weight.shape)),
              ('stride', source.stride, conv.stride[0]),
              ('dilation', source.dilation, conv.dilation[0]),
              ('groups', 'depthwise' if source.op.name == 'DEPTHWISE_CONV_2D' else 'dense',
               'depthwise' if conv.groups > 1 else 'dense'),
              ('activation', theirs_activation, activation)]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise TFLiteConversionError(f'{source.where}: {what} {theirs} in the file, {ours} '
                                        'in the model')
    if source.op.options['padding'] != 'same' and source.dilation == 1 \
            and conv.kernel_size[0] > 1:
        raise TFLiteConversionError(f'{source.where}: expected SAME padding')
    if conv.bias is None:
        raise TFLiteConversionError(f'{source.where}: the model layer has no bias')
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(source.weight))
        conv.bias.copy_(torch.from_numpy(source.bias))
