"""Convert Google's DeepLab MobileNetV2 / MobileNet-EdgeTPU TFLite models into checkpoints.

Three architectures: DeepLabV3 with DeepLab's MobileNetV2 head
(:class:`~deeplab_ros.core.models.deeplab_mnv2.DeepLabV3MobileNetV2`, the PASCAL VOC files),
the same head on MobileNet-EdgeTPU
(:class:`~deeplab_ros.core.models.mobilenet_edgetpu.DeepLabV3MobileNetEdgeTPU`, the Coral
Cityscapes file; its first blocks are fused, dense convs where MobileNetV2 has a depthwise
one) and DeepLabV3+ with its decoder
(:class:`~deeplab_ros.core.models.deeplabv3plus_tf.DeepLabV3PlusMobileNetV2TF`, the ADE20K
files); the graph says which (a second concatenation is the decoder's). The checkpoint's
normalisation reproduces the graph's input: ``x / 127.5 - 1`` for float inputs, the input
tensor's scale and zero point for uint8 ones.

The flatbuffer is parsed with the ``tflite`` package (no interpreter needed). Each conv is
read as one *logical* conv with what surrounds it: weights behind DEQUANTIZE ops (dynamic-range
int8), atrous convs written as SPACE_TO_BATCH_ND -> conv -> BATCH_TO_SPACE_ND (the block size
is the dilation; the paddings must be the symmetric "SAME" ones), batch norm left as MUL + ADD
by a per-channel constant (folded into the conv), and the activation fused into the last op or,
in uint8 graphs, implied by an output range that starts at zero. Backbone convs are matched to
the model's convs in graph order, head and decoder convs by how they are wired (pooling branch,
1x1 branch, projection; low-level projection, two separable convs, logits); every shape,
stride, dilation, group count and activation is checked, and any mismatch stops the conversion
with the op that disagreed.

Layouts: TFLite conv weights are OHWI (PyTorch OIHW: ``transpose(0, 3, 1, 2)``), depthwise
weights 1HWC (PyTorch (C, 1, H, W): ``transpose(3, 0, 1, 2)``). Quantized (uint8) weights are
dequantized with each tensor's scale and zero point (per channel where the file has one per
channel); int32 biases with their scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from deeplab_ros.core.checkpoint import CheckpointMetadata, save_checkpoint
from deeplab_ros.core.download import sha256_of
from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.labels import (
    ade20k32_labels, ade20k_labels, cityscapes_labels, LabelSet, voc_labels)
from deeplab_ros.core.models import build_model
from deeplab_ros.core.models.activation_quantization import quantize_activations

#: x / 127.5 - 1, expressed for RGB scaled to [0, 1] (the float graphs' input).
TFLITE_MEAN = (0.5, 0.5, 0.5)
TFLITE_STD = (0.5, 0.5, 0.5)
_ACTIVATIONS = {0: 'none', 1: 'relu', 2: 'relu_n1_to_1', 3: 'relu6'}
_SUPPORTED_OPS = {'CONV_2D', 'DEPTHWISE_CONV_2D', 'ADD', 'AVERAGE_POOL_2D', 'RESIZE_BILINEAR',
                  'CONCATENATION', 'QUANTIZE', 'DEQUANTIZE', 'ARG_MAX', 'SPACE_TO_BATCH_ND',
                  'BATCH_TO_SPACE_ND', 'MUL', 'TILE', 'HARD_SWISH'}
MOBILENETV2 = 'MobileNetV2'
EDGETPU = 'MobileNet-EdgeTPU'
#: Depth multipliers the converter maps, by backbone and stem width.
_DEPTH_MULTIPLIERS_BY_STEM = {MOBILENETV2: {16: 0.5, 32: 1.0}, EDGETPU: {24: 0.75, 32: 1.0}}
#: Label sets by the number of classes a converted model predicts.
_LABELS_BY_CLASSES: dict[int, Callable[[], LabelSet]] = {
    21: voc_labels, 151: ade20k_labels, 32: ade20k32_labels, 19: cityscapes_labels}


class TFLiteConversionError(ConfigurationError):
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

    def input_normalization(self) -> tuple[tuple[float, float, float],
                                           tuple[float, float, float]]:
        """(mean, std) for RGB in [0, 1] that give the values the graph's input holds.

        Float graphs take ``x / 127.5 - 1`` (:data:`TFLITE_MEAN`, :data:`TFLITE_STD`); a uint8
        input means ``(pixel - zero_point) * scale``, e.g. ``(pixel - 128) / 128``.
        """
        if not self.quantized_input:
            return TFLITE_MEAN, TFLITE_STD
        quant = self._graph.Tensors(self._graph.Inputs(0)).Quantization()
        scale, zero = float(quant.ScaleAsNumpy()[0]), float(quant.ZeroPointAsNumpy()[0])
        return (zero / 255,) * 3, (1 / (255 * scale),) * 3

    def quantization(self, index: int) -> tuple[float, int]:
        """(scale, zero point) of a uint8 activation tensor."""
        tensor = self._graph.Tensors(index)
        quant = tensor.Quantization()
        if tensor.Type() != 3 or quant is None or quant.ScaleLength() != 1:
            raise TFLiteConversionError(f'tensor {index} ({tensor.Name().decode()}) is not a '
                                        'uint8 tensor with one scale')
        return float(quant.ScaleAsNumpy()[0]), int(quant.ZeroPointAsNumpy()[0])

    def is_constant(self, index: int) -> bool:
        """Whether tensor ``index`` holds data in the file."""
        tensor = self._graph.Tensors(index)
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        return not (isinstance(data, int) or data is None or len(data) == 0)

    def integers(self, index: int) -> np.ndarray:
        """A constant int32 tensor (block shapes, paddings)."""
        tensor = self._graph.Tensors(index)
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        return np.frombuffer(data.tobytes(), dtype=np.int32).reshape(self.shapes[index])

    def output_range_starts_at_zero(self, index: int) -> bool:
        """Whether a uint8 activation tensor is quantized with zero point 0 (a ReLU)."""
        tensor = self._graph.Tensors(index)
        quant = tensor.Quantization()
        return (tensor.Type() == 3 and quant is not None and quant.ZeroPointLength() == 1
                and int(quant.ZeroPointAsNumpy()[0]) == 0)

    def tensor(self, index: int) -> np.ndarray:
        """A constant tensor as float32, dequantized where it is quantized.

        A tensor computed by a DEQUANTIZE op (dynamic-range weights) is read from its source.
        """
        tensor = self._graph.Tensors(index)
        if not self.is_constant(index):
            source = next((op for op in self.ops
                           if op.name == 'DEQUANTIZE' and index in op.outputs), None)
            if source is not None:
                return self.tensor(source.inputs[0])
            raise TFLiteConversionError(f'tensor {index} ({tensor.Name().decode()}) holds no '
                                        'constant data')
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
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
    if name == 'AVERAGE_POOL_2D':
        options = tflite.Pool2DOptions()
        options.Init(table.Bytes, table.Pos)
        return {'kernel': (options.FilterHeight(), options.FilterWidth()),
                'stride': (options.StrideH(), options.StrideW()),
                'padding': 'same' if options.Padding() == 0 else 'valid',
                'activation': _ACTIVATIONS.get(options.FusedActivationFunction(), '?')}
    if name == 'ADD':
        options = tflite.AddOptions()
        options.Init(table.Bytes, table.Pos)
        return {'activation': _ACTIVATIONS.get(options.FusedActivationFunction(), '?')}
    return {}


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


def _consumers(graph: TFLiteGraph, tensor: int) -> list[TFLiteOp]:
    return [op for op in graph.ops if tensor in op.inputs]


def _channel_constant(graph: TFLiteGraph, op: TFLiteOp | None, channels: int
                      ) -> np.ndarray | None:
    """The per-channel constant of a MUL/ADD by a constant vector, or None."""
    if op is None or len(op.inputs) != 2 or op.inputs[1] < 0:
        return None
    if graph.shapes[op.inputs[1]] != (channels,) or not graph.is_constant(op.inputs[1]):
        return None
    return graph.tensor(op.inputs[1])


def _single_consumer(graph: TFLiteGraph, tensor: int, name: str) -> TFLiteOp | None:
    users = _consumers(graph, tensor)
    return users[0] if len(users) == 1 and users[0].name == name else None


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
        space_to_batch = _producer(graph, source)
        if space_to_batch is not None and space_to_batch.name == 'SPACE_TO_BATCH_ND':
            dilation = _atrous_rate(graph, space_to_batch, op, weight.shape[-1])
            source = space_to_batch.inputs[0]
            batch_to_space = _single_consumer(graph, output, 'BATCH_TO_SPACE_ND')
            if batch_to_space is None:
                raise TFLiteConversionError(f'op {op.index}: SPACE_TO_BATCH_ND without its '
                                            'BATCH_TO_SPACE_ND')
            output = batch_to_space.outputs[0]
        multiply = _single_consumer(graph, output, 'MUL')
        scale = _channel_constant(graph, multiply, channels)
        if multiply is not None and scale is not None and activation == 'none':
            weight = weight * scale.reshape(-1, 1, 1, 1)
            bias = bias * scale
            output = multiply.outputs[0]
        add = _single_consumer(graph, output, 'ADD')
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


def _backbone_convs(model: nn.Module) -> list[tuple[nn.Conv2d, str]]:
    """Backbone convs in graph (depth-first) order with the activation that follows each."""
    result: list[tuple[nn.Conv2d, str]] = []

    def visit(module: nn.Module) -> None:
        children = list(module.children())
        for position, child in enumerate(children):
            if isinstance(child, nn.Conv2d):
                following = children[position + 1] if position + 1 < len(children) else None
                activation = ('relu6' if isinstance(following, nn.ReLU6) else
                              'relu' if isinstance(following, nn.ReLU) else 'none')
                result.append((child, activation))
            else:
                visit(child)

    visit(model.backbone)
    return result


def _assign(conv: nn.Conv2d, source: LogicalConv, activation: str) -> None:
    """Copy ``source`` into ``conv`` after checking that they are the same layer."""
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


def _producer(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    return next((op for op in graph.ops if tensor in op.outputs), None)


def _through_passthrough(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    """The op producing ``tensor``, looking through resizes, tiles and (de)quantize ops."""
    op = _producer(graph, tensor)
    while op is not None and op.name in ('RESIZE_BILINEAR', 'TILE', 'QUANTIZE', 'DEQUANTIZE'):
        op = _producer(graph, op.inputs[0])
    return op


def _fed_by(convs: list[LogicalConv], tensor: int, path: Path, what: str) -> LogicalConv:
    """The conv whose input is ``tensor``."""
    found = [conv for conv in convs if conv.input == tensor]
    if len(found) != 1:
        raise TFLiteConversionError(f'{path}: expected one {what}, found {len(found)}')
    return found[0]


def _resize_mode(graph: TFLiteGraph, path: Path) -> str:
    modes = set()
    for resize in (op for op in graph.ops if op.name == 'RESIZE_BILINEAR'):
        if resize.options.get('half_pixel_centers'):
            modes.add('half_pixel')
        else:
            modes.add('align_corners' if resize.options.get('align_corners') else 'tf_legacy')
    if len(modes) != 1:
        raise TFLiteConversionError(f'{path}: resizes mix conventions {sorted(modes)}')
    return modes.pop()


def _decoder_convs(graph: TFLiteGraph, convs: list[LogicalConv], concat: TFLiteOp,
                   projection: LogicalConv, path: Path) -> list[LogicalConv]:
    """The decoder's convs: low-level projection, two separable convs (dw, pw), logits."""
    order = [_through_passthrough(graph, tensor) for tensor in concat.inputs]
    if len(order) != 2 or order[0] is None or order[0].index != projection.op.index:
        raise TFLiteConversionError(f'{path}: decoder concatenation does not start with the '
                                    'upsampled encoder output')
    low_level = next((conv for conv in convs if conv.op is order[1]), None)
    if low_level is None:
        raise TFLiteConversionError(f'{path}: decoder concatenation has no low-level conv')
    chain = [low_level]
    tensor = concat.outputs[0]
    for what in ('decoder depthwise conv 0', 'decoder pointwise conv 0',
                 'decoder depthwise conv 1', 'decoder pointwise conv 1', 'logits conv'):
        chain.append(_fed_by(convs, tensor, path, what))
        tensor = chain[-1].output
    return chain


def _depthwise_tap_index(model: nn.Module) -> int:
    """Position among the backbone convs of the depthwise conv the decoder reads."""
    from deeplab_ros.core.models.deeplabv3plus_tf import LOW_LEVEL_BLOCK
    block = model.backbone[LOW_LEVEL_BLOCK]
    depthwise = block.conv[block.depthwise_end - 1][0]
    return [conv for conv, _ in _backbone_convs(model)].index(depthwise)


def _backbone_family(backbone_convs: list[LogicalConv], path: Path) -> tuple[str, float]:
    """The backbone (:data:`MOBILENETV2` or :data:`EDGETPU`) and its depth multiplier.

    MobileNetV2's first block is a depthwise conv after the stem; MobileNet-EdgeTPU's first
    blocks are fused (dense convs only).
    """
    fused = backbone_convs[1].op.name == 'CONV_2D'
    backbone = EDGETPU if fused else MOBILENETV2
    multipliers = _DEPTH_MULTIPLIERS_BY_STEM[backbone]
    stem_channels = backbone_convs[0].weight.shape[0]
    if stem_channels not in multipliers:
        expected = ' or '.join(f'{channels} (depth multiplier {multiplier})'
                               for channels, multiplier in multipliers.items())
        raise TFLiteConversionError(f'{path}: {backbone} stem has {stem_channels} channels; '
                                    f'expected {expected}')
    return backbone, multipliers[stem_channels]


def _activation_table(graph: TFLiteGraph, model: nn.Module,
                      layers: list[tuple[nn.Conv2d, LogicalConv, str]], path: Path
                      ) -> dict[str, tuple[float, int]]:
    """Module name -> (scale, zero point) of the uint8 activation it computes.

    Each conv's activation (its ReLU, or the conv itself when linear), each residual block's
    sum, and ``''`` (the model's output) for the resized logits the graph's arg-max reads.
    """
    if not graph.quantized_input:
        raise TFLiteConversionError(f'{path}: a float graph has no activation quantization')
    names = {module: name for name, module in model.named_modules()}
    activation_after: dict[nn.Module, nn.Module] = {}
    for module in model.modules():
        children = list(module.children())
        activation_after.update((child, after) for child, after in zip(children, children[1:])
                                if isinstance(after, (nn.ReLU, nn.ReLU6)))
    table, outputs = {}, {}
    for conv, source, _ in layers:
        table[names[activation_after.get(conv, conv)]] = graph.quantization(source.output)
        outputs[conv] = source.output
    for block in model.modules():
        if getattr(block, 'use_residual', False):
            projection = [conv for conv in block.modules() if isinstance(conv, nn.Conv2d)][-1]
            add = _single_consumer(graph, outputs[projection], 'ADD')
            if add is None:
                raise TFLiteConversionError(f'{path}: no residual ADD after the projection '
                                            f'of {names[block]}')
            table[names[block]] = graph.quantization(add.outputs[0])
    arg_max = next((op for op in graph.ops if op.name == 'ARG_MAX'), None)
    if arg_max is not None:
        table[''] = graph.quantization(arg_max.inputs[0])
    return table


def _has_int8_weights(graph: TFLiteGraph) -> bool:
    return any(op.name == 'DEQUANTIZE' for op in graph.ops)


def convert_tflite(path: str | Path, *, expected_sha256: str | None = None,
                   output_stride: int | None = None, input_size: int = 513,
                   cuda_settings: tuple[int, int] = (0, 0), quantized_activations: bool = False
                   ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert a DeepLab MobileNetV2 TFLite model into a model and its metadata.

    Args:
        path: The ``.tflite`` file.
        expected_sha256: Refuse a file with another content (the wrong download).
        output_stride: Stride the checkpoint runs at by default (the export's when None); the
            weights do not depend on it, so ``load_model(output_stride=...)`` can change it.
        input_size: Recommended input size stored in the metadata.
        cuda_settings: Recommended (input size, output stride) on CUDA (0: as on the CPU).
        quantized_activations: Emulate a uint8 graph's activation quantization (model option
            ``activation_quantization``, see
            :mod:`~deeplab_ros.core.models.activation_quantization`; DeepLabV3+ and
            MobileNet-EdgeTPU models).
    """
    path = Path(path)
    if expected_sha256 is not None and (digest := sha256_of(path)) != expected_sha256:
        raise TFLiteConversionError(f'{path} is not the expected model: its sha256 is '
                                    f'{digest}, expected {expected_sha256}')
    graph = read_tflite(path)
    if any(op.name == 'HARD_SWISH' for op in graph.ops):  # MobileNetV3: its own converter
        from deeplab_ros.core.tflite_mobilenetv3 import convert_mobilenetv3_tflite
        return convert_mobilenetv3_tflite(path, output_stride=output_stride,
                                          input_size=input_size, cuda_settings=cuda_settings)
    pools = [op for op in graph.ops if op.name == 'AVERAGE_POOL_2D']
    if len(pools) != 1:
        raise TFLiteConversionError(f'{path}: expected one image-pooling op, found {len(pools)}')
    pool = pools[0]
    convs = logical_convs(graph)
    backbone_convs = [conv for conv in convs if conv.op.index < pool.index]
    backbone, depth_multiplier = _backbone_family(backbone_convs, path)
    input_side = graph.input_shape[1]
    feature_side = graph.shapes[pool.inputs[0]][1]
    export_stride = round((input_side - 1) / (feature_side - 1))
    pooled = _fed_by(convs, pool.outputs[0], path, 'image-pooling conv')
    aspp0 = _fed_by(convs, pool.inputs[0], path, '1x1 branch on the backbone features')
    concats = [op for op in graph.ops if op.name == 'CONCATENATION']
    order = [_through_passthrough(graph, tensor) for tensor in concats[0].inputs]
    if [op.index for op in order if op] != [pooled.op.index, aspp0.op.index]:
        raise TFLiteConversionError(f'{path}: head concatenation is not [pooling, 1x1]')
    projection = _fed_by(convs, concats[0].outputs[0], path, 'head projection')
    resize = _resize_mode(graph, path)
    layers: list[tuple[nn.Conv2d, LogicalConv, str]]
    if len(concats) == 1:
        if resize != 'align_corners':
            raise TFLiteConversionError(f'{path}: resizes use {resize}; the DeepLabV3 model '
                                        'assumes align_corners=True')
        logits = _fed_by(convs, projection.output, path, 'logits conv')
        variant, options = 'deeplabv3_mobilenetv2', {'depth_multiplier': depth_multiplier}
        if backbone == EDGETPU:
            variant = 'deeplabv3_mobilenet_edgetpu'
            options['head_channels'] = pooled.weight.shape[0]
    else:
        if backbone != MOBILENETV2 or depth_multiplier != 1.0:
            raise TFLiteConversionError(f'{path}: DeepLabV3+ is mapped on MobileNetV2 at '
                                        f'depth multiplier 1.0 only, the file has {backbone} '
                                        f'at {depth_multiplier}')
        decoder_convs = _decoder_convs(graph, convs, concats[1], projection, path)
        logits = decoder_convs[-1]
        variant, options = 'deeplabv3plus_mobilenetv2_tf', {'resize': resize}
    num_classes = logits.weight.shape[0]
    model = build_model(variant, num_classes=num_classes, output_stride=export_stride,
                        **options)
    ours = _backbone_convs(model)
    if len(ours) != len(backbone_convs):
        raise TFLiteConversionError(f'{path}: {len(backbone_convs)} backbone convs in the '
                                    f'file, {len(ours)} in the model')
    layers = [(conv, source, activation)
              for (conv, activation), source in zip(ours, backbone_convs)]
    head = model.head
    layers += [(head.image_pooling[0], pooled, 'relu'), (head.aspp0[0], aspp0, 'relu'),
               (head.concat_projection[0], projection, 'relu')]
    if len(concats) == 1:
        layers.append((head.logits, logits, 'none'))
    else:
        decoder = model.decoder
        targets = [(decoder.feature_projection[0], 'relu'),
                   (decoder.decoder_conv0[0], 'relu'), (decoder.decoder_conv0[2], 'relu'),
                   (decoder.decoder_conv1[0], 'relu'), (decoder.decoder_conv1[2], 'relu'),
                   (decoder.logits, 'none')]
        layers += [(conv, source, activation)
                   for (conv, activation), source in zip(targets, decoder_convs)]
        tap = backbone_convs[_depthwise_tap_index(model)]
        if decoder_convs[0].input != tap.output:
            raise TFLiteConversionError(
                f'{path}: the decoder reads tensor {decoder_convs[0].input}, not the stride-4 '
                f'block\'s depthwise output (tensor {tap.output})')
    for conv, source, activation in layers:
        _assign(conv, source, activation)
    if quantized_activations:
        if variant == 'deeplabv3_mobilenetv2':
            raise TFLiteConversionError(f'{path}: activation quantization is emulated for '
                                        'DeepLabV3+ and MobileNet-EdgeTPU models only')
        options['activation_quantization'] = _activation_table(graph, model, layers, path)
        quantize_activations(model, options['activation_quantization'])
    labels = _LABELS_BY_CLASSES.get(num_classes, lambda: None)()
    kind = 'uint8 quantized, dequantized' if graph.quantized_input else \
        'float32 input, int8 weights dequantized' if _has_int8_weights(graph) else 'float32'
    mean, std = graph.input_normalization()
    runtime_stride = output_stride or export_stride
    if runtime_stride != export_stride:  # same weights, other dilations
        exported = model
        model = build_model(variant, num_classes=num_classes, output_stride=runtime_stride,
                            **options)
        model.load_state_dict(exported.state_dict())
    metadata = CheckpointMetadata(
        variant=variant, num_classes=num_classes, output_stride=runtime_stride,
        model_options=options,
        class_names=labels.class_names if labels else (),
        palette=labels.palette if labels else (),
        mean=mean, std=std, input_size=input_size,
        cuda_input_size=cuda_settings[0], cuda_output_stride=cuda_settings[1],
        source=f'{path.name} ({kind}; exported at {input_side}x{graph.input_shape[2]}, '
               f'output stride {export_stride}, {backbone} depth multiplier '
               f'{depth_multiplier})')
    return model.eval(), metadata


def convert_tflite_file(path: str | Path, output: str | Path, **options: Any) -> Path:
    """Convert ``path`` (options as :func:`convert_tflite`) and save it at ``output``."""
    model, metadata = convert_tflite(path, **options)
    return save_checkpoint(output, model, metadata)
