"""Read a TFLite flatbuffer into the operators, tensors and constants the converters map.

The flatbuffer is parsed with the ``tflite`` package (no interpreter needed), once per file:
:func:`read_tflite` returns a :class:`TFLiteGraph` that every model family's converter walks.
The helpers here only navigate the graph (who produces or consumes a tensor, which resize
convention it uses); what a conv with its surroundings means is
:mod:`~deeplab_ros.core.weights.convert.tflite_convs`' business.

Quantized (uint8) tensors are dequantized with each tensor's scale and zero point (per channel
where the file has one per channel); int32 biases with their scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplab_ros.core.errors import ConfigurationError

#: x / 127.5 - 1, expressed for RGB scaled to [0, 1] (the float graphs' input).
TFLITE_MEAN = (0.5, 0.5, 0.5)
TFLITE_STD = (0.5, 0.5, 0.5)
_ACTIVATIONS = {0: 'none', 1: 'relu', 2: 'relu_n1_to_1', 3: 'relu6'}
_SUPPORTED_OPS = {'CONV_2D', 'DEPTHWISE_CONV_2D', 'ADD', 'AVERAGE_POOL_2D', 'RESIZE_BILINEAR',
                  'CONCATENATION', 'QUANTIZE', 'DEQUANTIZE', 'ARG_MAX', 'SPACE_TO_BATCH_ND',
                  'BATCH_TO_SPACE_ND', 'MUL', 'TILE', 'HARD_SWISH'}


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
    """The parts of a TFLite model the converters need."""

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

    def has_op(self, name: str) -> bool:
        """Whether any operator is a ``name`` (``'HARD_SWISH'``, ``'DEQUANTIZE'`` ...)."""
        return any(op.name == name for op in self.ops)

    def has_int8_weights(self) -> bool:
        """Whether weights are stored as int8 behind DEQUANTIZE ops (dynamic range)."""
        return self.has_op('DEQUANTIZE')

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


def producer(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    """The op that computes ``tensor`` (None for inputs and constants)."""
    return next((op for op in graph.ops if tensor in op.outputs), None)


def consumers(graph: TFLiteGraph, tensor: int) -> list[TFLiteOp]:
    """The ops that read ``tensor``, in graph order."""
    return [op for op in graph.ops if tensor in op.inputs]


def single_consumer(graph: TFLiteGraph, tensor: int, name: str) -> TFLiteOp | None:
    """The op reading ``tensor`` when it is its only reader and a ``name`` op, else None."""
    users = consumers(graph, tensor)
    return users[0] if len(users) == 1 and users[0].name == name else None


def resize_mode(graph: TFLiteGraph, path: Path) -> str:
    """The one convention of the graph's bilinear resizes (see ``models.resize``).

    ``'half_pixel'``, ``'align_corners'`` or ``'tf_legacy'``; a graph that mixes them is
    refused.
    """
    modes = set()
    for resize in (op for op in graph.ops if op.name == 'RESIZE_BILINEAR'):
        if resize.options.get('half_pixel_centers'):
            modes.add('half_pixel')
        else:
            modes.add('align_corners' if resize.options.get('align_corners') else 'tf_legacy')
    if len(modes) != 1:
        raise TFLiteConversionError(f'{path}: resizes mix conventions {sorted(modes)}')
    return modes.pop()
