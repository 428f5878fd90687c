"""Convert Google's DeepLab MobileNetV2 TFLite models into checkpoints with metadata.

The flatbuffer is parsed with the ``tflite`` package (no interpreter needed). Backbone convs
are matched to :class:`~deeplab_ros.core.models.deeplab_mnv2.DeepLabV3MobileNetV2`'s convs in
graph order, the head's four convs by how they are wired (pooling branch, 1x1 branch,
projection, logits); every shape, stride, dilation, group count and fused activation is
checked, and any mismatch stops the conversion with the op that disagreed.

Layouts: TFLite conv weights are OHWI (PyTorch OIHW: ``transpose(0, 3, 1, 2)``), depthwise
weights 1HWC (PyTorch (C, 1, H, W): ``transpose(3, 0, 1, 2)``). Quantized (uint8) weights are
dequantized with each tensor's scale and zero point (per channel where the file has one per
channel); int32 biases with their scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplab_ros.core.checkpoint import CheckpointMetadata, save_checkpoint
from deeplab_ros.core.labels import voc_labels
from deeplab_ros.core.models import build_model

#: x / 127.5 - 1, expressed for RGB scaled to [0, 1].
TFLITE_MEAN = (0.5, 0.5, 0.5)
TFLITE_STD = (0.5, 0.5, 0.5)
_ACTIVATIONS = {0: 'none', 1: 'relu', 2: 'relu_n1_to_1', 3: 'relu6'}
_SUPPORTED_OPS = {'CONV_2D', 'DEPTHWISE_CONV_2D', 'ADD', 'AVERAGE_POOL_2D', 'RESIZE_BILINEAR',
                  'CONCATENATION', 'QUANTIZE', 'DEQUANTIZE', 'ARG_MAX'}


class TFLiteConversionError(ValueError):
    """The TFLite file does not have the structure this converter maps."""


@dataclass
class TFLiteOp:
    """One operator: its name, input/output tensor ids and the options we use."""

    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """The parts of a TFLite model the converter needs."""

    ops: list[TFLiteOp]
    shapes: dict[int, tuple[int, ...]]
    input_shape: tuple[int, ...]
    quantized_input: bool
    _model: Any
    _graph: Any

    def tensor(self, index: int) -> np.ndarray:
        """A constant tensor as float32, dequantized where it is quantized."""
        tensor = self._graph.Tensors(index)
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data is None or len(data) == 0:
            raise TFLiteConversionError(f'tensor {index} ({tensor.Name().decode()}) holds no '
                                        'constant data')
        dtype = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8}.get(tensor.Type())
        if dtype is None:
            raise TFLiteConversionError(f'tensor {index}: unsupported type {tensor.Type()}')
        values = np.frombuffer(data.tobytes(), dtype=dtype).reshape(self.shapes[index])
        if dtype == np.float32:
            return values.astype(np.float32)
        quant = tensor.Quantization()
        if quant is None or quant.ScaleLength() == 0:
            raise TFLiteConversionError(f'tensor {index}: integer data without quantization')
        scale = quant.ScaleAsNumpy().astype(np.float64)
        zero = quant.ZeroPointAsNumpy().astype(np.float64) if quant.ZeroPointLength() else 0.0
        if scale.size > 1:
            shape = [1] * values.ndim
            shape[quant.QuantizedDimension()] = scale.size
            scale, zero = scale.reshape(shape), np.reshape(zero, shape)
        return ((values.astype(np.float64) - zero) * scale).astype(np.float32)


def read_tflite(path: str | Path) -> TFLiteGraph:
    """Parse a TFLite flatbuffer into a :class:`TFLiteGraph`."""
    import tflite  # parsing only; imported here so the core does not need it to run

    path = Path(path)
    try:
        buffer = path.read_bytes()
        model = tflite.Model.GetRootAsModel(buffer, 0)
        graph = model.Subgraphs(0)
    except Exception as error:  # noqa: BLE001 - any parse failure means "not a TFLite file"
        raise TFLiteConversionError(f'{path} is not a readable TFLite model: {error}') from error
    names = {value: key for key, value in vars(tflite.BuiltinOperator).items()
             if not key.startswith('_')}
    shapes = {i: tuple(int(v) for v in graph.Tensors(i).ShapeAsNumpy())
              if graph.Tensors(i).ShapeLength() else ()
              for i in range(graph.TensorsLength())}
    ops = []
    for index in range(graph.OperatorsLength()):
        op = graph.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), '?')
        if name not in _SUPPORTED_OPS:
            raise TFLiteConversionError(f'{path}: op {index} is {name}, which this converter '
                                        'does not map (is this a DeepLab MobileNetV2 model?)')
        ops.append(TFLiteOp(index, name,
                            [int(op.Inputs(j)) for j in range(op.InputsLength())],
                            [int(op.Outputs(j)) for j in range(op.OutputsLength())],
                            _options(tflite, name, op)))
    input_index = int(graph.Inputs(0))
    return TFLiteGraph(ops, shapes, shapes[input_index],
                       graph.Tensors(input_index).Type() == 3, model, graph)


def _options(tflite: Any, name: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if name in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
        options = (tflite.Conv2DOptions() if name == 'CONV_2D'
                   else tflite.DepthwiseConv2DOptions())
        options.Init(table.Bytes, table.Pos)
        return {'stride': options.StrideH(), 'dilation': options.DilationHFactor(),
                'padding': 'same' if options.Padding() == 0 else 'valid',
                'activation': _ACTIVATIONS.get(options.FusedActivationFunction(), '?')}
    if name == 'RESIZE_BILINEAR':
        options = tflite.ResizeBilinearOptions()
        options.Init(table.Bytes, table.Pos)
        return {'align_corners': options.AlignCorners(),
                'half_pixel_centers': options.HalfPixelCenters()}
    if name == 'ADD':
        options = tflite.AddOptions()
        options.Init(table.Bytes, table.Pos)
        return {'activation': _ACTIVATIONS.get(options.FusedActivationFunction(), '?')}
    return {}


def _backbone_convs(model: nn.Module) -> list[tuple[nn.Conv2d, str]]:
    """Backbone convs in graph (depth-first) order with the activation that follows each."""
    result: list[tuple[nn.Conv2d, str]] = []

    def visit(module: nn.Module) -> None:
        children = list(module.children())
        for position, child in enumerate(children):
            if isinstance(child, nn.Conv2d):
                following = children[position + 1] if position + 1 < len(children) else None
                result.append((child, 'relu6' if isinstance(following, nn.ReLU6) else 'none'))
            else:
                visit(child)

    visit(model.backbone)
    return result


def _assign(conv: nn.Conv2d, op: TFLiteOp, graph: TFLiteGraph, activation: str) -> None:
    weight = graph.tensor(op.inputs[1])
    if op.name == 'DEPTHWISE_CONV_2D':
        weight = weight.transpose(3, 0, 1, 2)
    else:
        weight = weight.transpose(0, 3, 1, 2)
    where = f'op {op.index} ({op.name})'
    checks = [('weight shape', tuple(weight.shape), tuple(conv.weight.shape)),
              ('stride', op.options['stride'], conv.stride[0]),
              ('dilation', op.options['dilation'], conv.dilation[0]),
              ('groups', 'depthwise' if op.name == 'DEPTHWISE_CONV_2D' else 'dense',
               'depthwise' if conv.groups > 1 else 'dense'),
              ('fused activation', op.options['activation'], activation)]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise TFLiteConversionError(f'{where}: {what} {theirs} in the file, {ours} in the '
                                        'model')
    if op.options['padding'] != 'same' and conv.kernel_size[0] > 1:
        raise TFLiteConversionError(f'{where}: expected SAME padding')
    if conv.bias is None or len(op.inputs) < 3 or op.inputs[2] < 0:
        raise TFLiteConversionError(f'{where}: expected a conv with bias')
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        conv.bias.copy_(torch.from_numpy(graph.tensor(op.inputs[2]).reshape(-1)))


def _producer(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    return next((op for op in graph.ops if tensor in op.outputs), None)


def _through_passthrough(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    """The op producing ``tensor``, looking through resizes and (de)quantize ops."""
    op = _producer(graph, tensor)
    while op is not None and op.name in ('RESIZE_BILINEAR', 'QUANTIZE', 'DEQUANTIZE'):
        op = _producer(graph, op.inputs[0])
    return op


def convert_tflite(path: str | Path) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert a DeepLab MobileNetV2 TFLite model into a model and its metadata."""
    path = Path(path)
    graph = read_tflite(path)
    pools = [op for op in graph.ops if op.name == 'AVERAGE_POOL_2D']
    if len(pools) != 1:
        raise TFLiteConversionError(f'{path}: expected one image-pooling op, found {len(pools)}')
    pool = pools[0]
    backbone_ops = [op for op in graph.ops[:pool.index]
                    if op.name in ('CONV_2D', 'DEPTHWISE_CONV_2D')]
    stem_channels = graph.shapes[backbone_ops[0].outputs[0]][-1]
    depth_multiplier = {16: 0.5, 32: 1.0}.get(stem_channels)
    if depth_multiplier is None:
        raise TFLiteConversionError(f'{path}: stem has {stem_channels} channels; expected 16 '
                                    '(depth multiplier 0.5) or 32 (1.0)')
    input_side = graph.input_shape[1]
    feature_side = graph.shapes[pool.inputs[0]][1]
    output_stride = round((input_side - 1) / (feature_side - 1))
    heads = [op for op in graph.ops[pool.index:] if op.name == 'CONV_2D']
    if len(heads) != 4:
        raise TFLiteConversionError(f'{path}: expected 4 head convs, found {len(heads)}')
    pooled = next(op for op in heads if op.inputs[0] == pool.outputs[0])
    aspp0 = next(op for op in heads if op.inputs[0] == pool.inputs[0])
    concat = next(op for op in graph.ops if op.name == 'CONCATENATION')
    order = [_through_passthrough(graph, tensor) for tensor in concat.inputs]
    if [op.index for op in order if op] != [pooled.index, aspp0.index]:
        raise TFLiteConversionError(f'{path}: head concatenation is not [pooling, 1x1]')
    projection = next(op for op in heads if op.inputs[0] == concat.outputs[0])
    logits = next(op for op in heads if op.inputs[0] == projection.outputs[0])
    num_classes = graph.shapes[logits.outputs[0]][-1]
    for resize in (op for op in graph.ops if op.name == 'RESIZE_BILINEAR'):
        if not resize.options.get('align_corners') or resize.options.get('half_pixel_centers'):
            raise TFLiteConversionError(f'{path}: op {resize.index} resizes without '
                                        'align_corners=True, which the model assumes')

    model = build_model('deeplabv3_mobilenetv2', num_classes=num_classes,
                        output_stride=output_stride, depth_multiplier=depth_multiplier)
    convs = _backbone_convs(model)
    if len(convs) != len(backbone_ops):
        raise TFLiteConversionError(f'{path}: {len(backbone_ops)} backbone convs in the file, '
                                    f'{len(convs)} in the model')
    for (conv, activation), op in zip(convs, backbone_ops):
        _assign(conv, op, graph, activation)
    head = model.head
    for module, op, activation in ((head.image_pooling[0], pooled, 'relu'),
                                   (head.aspp0[0], aspp0, 'relu'),
                                   (head.concat_projection[0], projection, 'relu'),
                                   (head.logits, logits, 'none')):
        _assign(module, op, graph, activation)
    labels = voc_labels()
    kind = 'uint8 quantized, dequantized' if graph.quantized_input else 'float32'
    metadata = CheckpointMetadata(
        variant='deeplabv3_mobilenetv2', num_classes=num_classes, output_stride=output_stride,
        model_options={'depth_multiplier': depth_multiplier},
        class_names=labels.class_names if num_classes == len(labels) else (),
        palette=labels.palette if num_classes == len(labels) else (),
        mean=TFLITE_MEAN, std=TFLITE_STD, input_size=513,
        source=f'{path.name} ({kind}; exported at {input_side}x{input_side}, '
               f'output stride {output_stride}, depth multiplier {depth_multiplier})')
    return model.eval(), metadata


def convert_tflite_file(path: str | Path, output: str | Path) -> Path:
    """Convert ``path`` and save the checkpoint (with metadata) at ``output``."""
    model, metadata = convert_tflite(path)
    return save_checkpoint(output, model, metadata)
