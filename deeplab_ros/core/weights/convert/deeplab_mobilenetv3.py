"""Convert Google's MobileNetV3-Large DeepLab TFLite graph into a model with metadata.

The target is :class:`~deeplab_ros.core.models.lraspp_tf.LRASPPMobileNetV3TF`. The graph
is read once by :mod:`~deeplab_ros.core.weights.convert.tflite_graph` (its int8 weights behind
DEQUANTIZE ops are dequantized with their scales), and two activations that TFLite writes as
separate ops are resolved first
(:func:`~deeplab_ros.core.weights.convert.tflite_convs.with_separate_activation`):

- hard-swish: a conv without fused activation whose only consumer is HARD_SWISH;
- hard sigmoid (squeeze-and-excite and image-pooling gates): a conv with fused ReLU6 whose
  only consumer is a MUL by the scalar 1/6. TensorFlow's ``relu6(x + 3) / 6`` has its ``+ 3``
  folded into the conv bias, which is taken back out (``nn.Hardsigmoid`` adds it).

Backbone convs (those before the head's average pool) are matched to the model's convs in
graph order; every squeeze-and-excite pool must be global. The head is matched by its wiring:
the image-pooling conv reads the fixed-kernel pool, the 1x1 branch reads the backbone
features and is multiplied by the resized gate, the logits conv reads the resized product,
the stride-8 conv reads the depthwise activation of the model's low-level block, and the
two logits are added. Shapes, strides, groups, activations, pool kernel and resize
convention are checked; a mismatch names the op.

The graph has float activations (only its weights are int8): there is no activation
quantization to emulate, and asking for it (``quantized_activations``) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from torch import nn

from deeplab_ros.core.labels import label_set_for
from deeplab_ros.core.models import build_model
from deeplab_ros.core.models.lraspp_tf import (
    IMAGE_POOLING_KERNEL, IMAGE_POOLING_STRIDE, LOW_LEVEL_BLOCK)
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata
from deeplab_ros.core.weights.convert.tflite_convs import (
    assign_checked, backbone_convs, depthwise_tap_position, fed_by, LogicalConv, logical_convs,
    model_conv, with_separate_activation)
from deeplab_ros.core.weights.convert.tflite_graph import (
    consumers, producer, read_tflite, resize_mode, single_consumer, TFLITE_MEAN, TFLITE_STD,
    TFLiteConversionError, TFLiteGraph, TFLiteOp)
from deeplab_ros.core.weights.download import verify_sha256

Found = TypeVar('Found', TFLiteOp, LogicalConv)
VARIANT = 'lraspp_mobilenetv3_large_tf'
OUTPUT_STRIDE = 32


def _only(ops: list[Found], path: Path, what: str) -> Found:
    if len(ops) != 1:
        raise TFLiteConversionError(f'{path}: expected one {what}, found {len(ops)}')
    return ops[0]


def _check_pools(graph: TFLiteGraph, head_pool: TFLiteOp, path: Path) -> None:
    """Squeeze-and-excite pools are global; the head's has the model's kernel and stride."""
    for pool in (op for op in graph.ops if op.name == 'AVERAGE_POOL_2D'):
        if pool is head_pool:
            expected = {'kernel': IMAGE_POOLING_KERNEL, 'stride': IMAGE_POOLING_STRIDE,
                        'padding': 'valid'}
        else:
            expected = {'kernel': graph.shapes[pool.inputs[0]][1:3], 'padding': 'valid'}
        found = {key: pool.options.get(key) for key in expected}
        if found != expected:
            raise TFLiteConversionError(f'{path}: op {pool.index} (AVERAGE_POOL_2D) has '
                                        f'{found}, the model expects {expected}')


def _before_resizes(graph: TFLiteGraph, tensor: int) -> int:
    """The tensor that ``tensor`` is a (chain of) bilinear resize(s) of, or itself."""
    op = producer(graph, tensor)
    while op is not None and op.name == 'RESIZE_BILINEAR':
        tensor = op.inputs[0]
        op = producer(graph, tensor)
    return tensor


def _head_convs(graph: TFLiteGraph, convs: list[LogicalConv], head_pool: TFLiteOp,
                path: Path) -> tuple[LogicalConv, LogicalConv, LogicalConv, LogicalConv]:
    """(image-pooling conv, 1x1 branch, logits conv, stride-8 logits conv), by wiring."""
    image_pooling = fed_by(convs, head_pool.outputs[0], path, 'image-pooling conv')
    aspp0 = fed_by(convs, head_pool.inputs[0], path, '1x1 branch on the backbone features')
    gating = single_consumer(graph, aspp0.output, 'MUL')
    if gating is None or sorted(_before_resizes(graph, tensor) for tensor in gating.inputs) \
            != sorted((aspp0.output, image_pooling.output)):
        raise TFLiteConversionError(f'{path}: the 1x1 branch is not multiplied by the '
                                    'image-pooling gate')
    logits = _only([conv for conv in convs
                    if _before_resizes(graph, conv.input) == gating.outputs[0]],
                   path, 'logits conv on the gated features')
    total = _only([op for op in consumers(graph, logits.output) if op.name == 'ADD'],
                  path, 'sum of the two logits')
    others = [_before_resizes(graph, tensor) for tensor in total.inputs
              if tensor != logits.output]
    low_level = next((conv for conv in convs if others == [conv.output]), None)
    if low_level is None:
        raise TFLiteConversionError(f'{path}: the logits are not added to a stride-8 conv')
    return image_pooling, aspp0, logits, low_level


def is_mobilenetv3(graph: TFLiteGraph) -> bool:
    """Whether ``graph`` is a MobileNetV3 one (it computes hard-swish)."""
    return graph.has_op('HARD_SWISH')


def convert_mobilenetv3_tflite(path: str | Path, *, expected_sha256: str | None = None,
                               output_stride: int | None = None, input_size: int = 769,
                               cuda_settings: tuple[int, int] = (0, 0),
                               quantized_activations: bool = False
                               ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert Google's MobileNetV3-Large DeepLab TFLite model into a model and metadata.

    The arguments are :func:`~deeplab_ros.core.weights.convert.convert_tflite`'s, except that
    ``output_stride`` can only be None or 32 (the architecture has no other) and
    ``quantized_activations`` is refused (the graph's activations are float).
    """
    path = Path(path)
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256, what='the expected model',
                      error=TFLiteConversionError)
    _check_settings(output_stride, quantized_activations, path)
    return convert_mobilenetv3_graph(read_tflite(path), path, output_stride=output_stride,
                                     input_size=input_size, cuda_settings=cuda_settings,
                                     quantized_activations=quantized_activations)


def _check_settings(output_stride: int | None, quantized_activations: bool,
                    path: Path) -> None:
    if output_stride not in (None, OUTPUT_STRIDE):
        raise TFLiteConversionError(f'{VARIANT} runs at output stride {OUTPUT_STRIDE} only, '
                                    f'not {output_stride}')
    if quantized_activations:
        raise TFLiteConversionError(
            f'{path}: quantized_activations is not available for {VARIANT}: the MobileNetV3 '
            'graph computes in float (only its weights are int8), so there is no activation '
            'quantization to emulate', setting='quantized_activations')


def convert_mobilenetv3_graph(graph: TFLiteGraph, path: Path, *,
                              output_stride: int | None = None, input_size: int = 769,
                              cuda_settings: tuple[int, int] = (0, 0),
                              quantized_activations: bool = False
                              ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert the graph of Google's MobileNetV3-Large DeepLab file (read from ``path``).

    The arguments are :func:`convert_mobilenetv3_tflite`'s, with the graph already read.
    """
    _check_settings(output_stride, quantized_activations, path)
    if not is_mobilenetv3(graph):
        raise TFLiteConversionError(f'{path}: no HARD_SWISH op, not a MobileNetV3 model')
    if resize_mode(graph, path) != 'align_corners':
        raise TFLiteConversionError(f'{path}: resizes are not align_corners=True')
    convs = [with_separate_activation(graph, conv) for conv in logical_convs(graph)]
    head_pool = [op for op in graph.ops if op.name == 'AVERAGE_POOL_2D'][-1]
    _check_pools(graph, head_pool, path)
    file_backbone_convs = [conv for conv in convs if conv.op.index < head_pool.index]
    if file_backbone_convs[-1].output != head_pool.inputs[0]:
        raise TFLiteConversionError(f'{path}: the image pooling does not read the last '
                                    'backbone conv')
    image_pooling, aspp0, logits, low_level = _head_convs(graph, convs, head_pool, path)
    input_shape = graph.input_shape
    export_stride = round((input_shape[1] - 1) / (graph.shapes[head_pool.inputs[0]][1] - 1))
    if export_stride != OUTPUT_STRIDE:
        raise TFLiteConversionError(f'{path}: exported at output stride {export_stride}; '
                                    f'{VARIANT} has {OUTPUT_STRIDE} only')
    num_classes = logits.weight.shape[0]
    model = build_model(VARIANT, num_classes=num_classes, output_stride=OUTPUT_STRIDE)
    ours = backbone_convs(model)
    if len(ours) != len(file_backbone_convs):
        raise TFLiteConversionError(f'{path}: {len(file_backbone_convs)} backbone convs in '
                                    f'the file, {len(ours)} in the model')
    tap = depthwise_tap_position(model, LOW_LEVEL_BLOCK)
    if low_level.input != file_backbone_convs[tap].output:
        raise TFLiteConversionError(
            f'{path}: the stride-8 logits read tensor {low_level.input}, not the depthwise '
            f'activation of block {LOW_LEVEL_BLOCK} (tensor {file_backbone_convs[tap].output})')
    layers = [(conv, source, activation)
              for (conv, activation), source in zip(ours, file_backbone_convs)]
    layers += [(model_conv(model, 'head.image_pooling.0'), image_pooling, 'hardsigmoid'),
               (model_conv(model, 'head.aspp0.0'), aspp0, 'relu'),
               (model_conv(model, 'head.logits'), logits, 'none'),
               (model_conv(model, 'head.low_level_logits'), low_level, 'none')]
    for conv, source, activation in layers:
        assign_checked(conv, source, activation)
    metadata = CheckpointMetadata(
        variant=VARIANT, num_classes=num_classes, output_stride=OUTPUT_STRIDE,
        mean=TFLITE_MEAN, std=TFLITE_STD, input_size=input_size,
        cuda_input_size=cuda_settings[0], cuda_output_stride=cuda_settings[1],
        source=f'{path.name} (float32 input, int8 weights dequantized; exported at '
               f'{input_shape[1]}x{input_shape[2]}, output stride {export_stride})')
    labels = label_set_for(num_classes)
    if labels is not None:
        metadata.class_names, metadata.palette = labels.class_names, labels.palette
    return model.eval(), metadata
