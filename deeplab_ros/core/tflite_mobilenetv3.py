"""Convert Google's MobileNetV3-Large DeepLab TFLite model into a checkpoint with metadata.

The target is :class:`~deeplab_ros.core.models.mobilenetv3_tf.LRASPPMobileNetV3TF`. The graph
is read with :mod:`~deeplab_ros.core.tflite_convert`'s reader (its int8 weights behind
DEQUANTIZE ops are dequantized with their scales), and two activations that TFLite writes as
separate ops are resolved first:

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
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from deeplab_ros.core.checkpoint import CheckpointMetadata
from deeplab_ros.core.download import sha256_of
from deeplab_ros.core.labels import cityscapes_labels
from deeplab_ros.core.models import build_model
from deeplab_ros.core.models.mobilenetv3_tf import (
    ACTIVATIONS, IMAGE_POOLING_KERNEL, IMAGE_POOLING_STRIDE, LOW_LEVEL_BLOCK)
from deeplab_ros.core.tflite_convert import (
    _assign, _consumers, _fed_by, _producer, _resize_mode, _single_consumer,
    LogicalConv, logical_convs, read_tflite, TFLITE_MEAN, TFLITE_STD, TFLiteConversionError,
    TFLiteGraph, TFLiteOp)

VARIANT = 'lraspp_mobilenetv3_large_tf'
OUTPUT_STRIDE = 32
#: Cityscapes' 19 train-id classes.
NUM_CLASSES = 19


def _is_scalar(graph: TFLiteGraph, index: int, value: float) -> bool:
    return (index >= 0 and graph.shapes[index] in ((), (1,)) and graph.is_constant(index)
            and abs(float(graph.tensor(index).reshape(-1)[0]) - value) < 1e-4)


def with_separate_activation(graph: TFLiteGraph, conv: LogicalConv) -> LogicalConv:
    """``conv`` with a following HARD_SWISH, or ReLU6 + MUL by 1/6, taken as its activation."""
    if conv.activation == 'none':
        hard_swish = _single_consumer(graph, conv.output, 'HARD_SWISH')
        if hard_swish is not None:
            return dataclasses.replace(conv, activation='hardswish',
                                       output=hard_swish.outputs[0])
    if conv.activation == 'relu6':
        scale = _single_consumer(graph, conv.output, 'MUL')
        if scale is not None and _is_scalar(graph, scale.inputs[1], 1 / 6):
            return dataclasses.replace(conv, activation='hardsigmoid', bias=conv.bias - 3.0,
                                       output=scale.outputs[0])
    return conv


def convs_with_activations(module: nn.Module) -> list[tuple[nn.Conv2d, str]]:
    """List the convs of ``module`` with the activation that follows each.

    The convs come in execution (depth-first) order, each with the name of the activation
    module that follows it (``'none'`` if none does).
    """
    names = {kind: name for name, kind in ACTIVATIONS.items()}
    children = list(module.children())
    result: list[tuple[nn.Conv2d, str]] = []
    for position, child in enumerate(children):
        if isinstance(child, nn.Conv2d):
            following = children[position + 1] if position + 1 < len(children) else None
            result.append((child, names.get(type(following), 'none')))
        else:
            result.extend(convs_with_activations(child))
    return result


def _only(ops: list[TFLiteOp], path: Path, what: str) -> TFLiteOp:
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
    op = _producer(graph, tensor)
    while op is not None and op.name == 'RESIZE_BILINEAR':
        tensor = op.inputs[0]
        op = _producer(graph, tensor)
    return tensor


def _head_convs(graph: TFLiteGraph, convs: list[LogicalConv], head_pool: TFLiteOp,
                path: Path) -> tuple[LogicalConv, LogicalConv, LogicalConv, LogicalConv]:
    """(image-pooling conv, 1x1 branch, logits conv, stride-8 logits conv), by wiring."""
    image_pooling = _fed_by(convs, head_pool.outputs[0], path, 'image-pooling conv')
    aspp0 = _fed_by(convs, head_pool.inputs[0], path, '1x1 branch on the backbone features')
    gating = _single_consumer(graph, aspp0.output, 'MUL')
    if gating is None or sorted(_before_resizes(graph, tensor) for tensor in gating.inputs) \
            != sorted((aspp0.output, image_pooling.output)):
        raise TFLiteConversionError(f'{path}: the 1x1 branch is not multiplied by the '
                                    'image-pooling gate')
    logits = _only([conv for conv in convs
                    if _before_resizes(graph, conv.input) == gating.outputs[0]],
                   path, 'logits conv on the gated features')
    total = _only([op for op in _consumers(graph, logits.output) if op.name == 'ADD'],
                  path, 'sum of the two logits')
    others = [_before_resizes(graph, tensor) for tensor in total.inputs
              if tensor != logits.output]
    low_level = next((conv for conv in convs if others == [conv.output]), None)
    if low_level is None:
        raise TFLiteConversionError(f'{path}: the logits are not added to a stride-8 conv')
    return image_pooling, aspp0, logits, low_level


def convert_mobilenetv3_tflite(path: str | Path, *, expected_sha256: str | None = None,
                               output_stride: int | None = None, input_size: int = 769,
                               cuda_settings: tuple[int, int] = (0, 0)
                               ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert Google's MobileNetV3-Large DeepLab TFLite model into a model and metadata.

    The arguments are :func:`~deeplab_ros.core.tflite_convert.convert_tflite`'s, except that
    ``output_stride`` can only be None or 32 (the architecture has no other).
    """
    path = Path(path)
    if expected_sha256 is not None and (digest := sha256_of(path)) != expected_sha256:
        raise TFLiteConversionError(f'{path} is not the expected model: its sha256 is '
                                    f'{digest}, expected {expected_sha256}')
    if output_stride not in (None, OUTPUT_STRIDE):
        raise TFLiteConversionError(f'{VARIANT} runs at output stride {OUTPUT_STRIDE} only, '
                                    f'not {output_stride}')
    graph = read_tflite(path)
    if not any(op.name == 'HARD_SWISH' for op in graph.ops):
        raise TFLiteConversionError(f'{path}: no HARD_SWISH op, not a MobileNetV3 model')
    if _resize_mode(graph, path) != 'align_corners':
        raise TFLiteConversionError(f'{path}: resizes are not align_corners=True')
    convs = [with_separate_activation(graph, conv) for conv in logical_convs(graph)]
    head_pool = [op for op in graph.ops if op.name == 'AVERAGE_POOL_2D'][-1]
    _check_pools(graph, head_pool, path)
    backbone_convs = [conv for conv in convs if conv.op.index < head_pool.index]
    if backbone_convs[-1].output != head_pool.inputs[0]:
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
    ours = convs_with_activations(model.backbone)
    if len(ours) != len(backbone_convs):
        raise TFLiteConversionError(f'{path}: {len(backbone_convs)} backbone convs in the '
                                    f'file, {len(ours)} in the model')
    block = model.backbone[LOW_LEVEL_BLOCK]
    tap = [conv for conv, _ in ours].index(block.conv[block.depthwise_end - 1][0])
    if low_level.input != backbone_convs[tap].output:
        raise TFLiteConversionError(
            f'{path}: the stride-8 logits read tensor {low_level.input}, not the depthwise '
            f'activation of block {LOW_LEVEL_BLOCK} (tensor {backbone_convs[tap].output})')
    head = model.head
    layers = [(conv, source, activation)
              for (conv, activation), source in zip(ours, backbone_convs)]
    layers += [(head.image_pooling[0], image_pooling, 'hardsigmoid'),
               (head.aspp0[0], aspp0, 'relu'), (head.logits, logits, 'none'),
               (head.low_level_logits, low_level, 'none')]
    for conv, source, activation in layers:
        _assign(conv, source, activation)
    metadata = CheckpointMetadata(
        variant=VARIANT, num_classes=num_classes, output_stride=OUTPUT_STRIDE,
        mean=TFLITE_MEAN, std=TFLITE_STD, input_size=input_size,
        cuda_input_size=cuda_settings[0], cuda_output_stride=cuda_settings[1],
        source=f'{path.name} (float32 input, int8 weights dequantized; exported at '
               f'{input_shape[1]}x{input_shape[2]}, output stride {export_stride})')
    if num_classes == NUM_CLASSES:
        labels = cityscapes_labels()
        metadata.class_names, metadata.palette = labels.class_names, labels.palette
    return model.eval(), metadata
