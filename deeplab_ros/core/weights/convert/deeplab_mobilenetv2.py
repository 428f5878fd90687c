"""Convert Google's DeepLab MobileNetV2 / MobileNet-EdgeTPU TFLite graphs into models.

Three architectures: DeepLabV3 with DeepLab's MobileNetV2 head
(:class:`~deeplab_ros.core.models.deeplabv3_tf.DeepLabV3MobileNetV2`, the PASCAL VOC files),
the same head on MobileNet-EdgeTPU
(:class:`~deeplab_ros.core.models.deeplabv3_tf.DeepLabV3MobileNetEdgeTPU`, the Coral
Cityscapes file; its first blocks are fused, dense convs where MobileNetV2 has a depthwise
one) and DeepLabV3+ with its decoder
(:class:`~deeplab_ros.core.models.deeplabv3plus_tf.DeepLabV3PlusMobileNetV2TF`, the ADE20K
files); the graph says which (a second concatenation is the decoder's). The checkpoint's
normalisation reproduces the graph's input: ``x / 127.5 - 1`` for float inputs, the input
tensor's scale and zero point for uint8 ones.

The graph is read once (:mod:`~deeplab_ros.core.weights.convert.tflite_graph`) and its convs
taken as logical convs (:mod:`~deeplab_ros.core.weights.convert.tflite_convs`). Backbone convs
are matched to the model's convs in graph order, head and decoder convs by how they are wired
(pooling branch, 1x1 branch, projection; low-level projection, two separable convs, logits);
every shape, stride, dilation, group count and activation is checked, and any mismatch stops
the conversion with the op that disagreed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from deeplab_ros.core.labels import label_set_for
from deeplab_ros.core.models import build_model
from deeplab_ros.core.models.activation_quantization import quantize_activations
from deeplab_ros.core.models.deeplabv3plus_tf import LOW_LEVEL_BLOCK
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, DEFAULT_INPUT_SIZE
from deeplab_ros.core.weights.convert.tflite_convs import (
    assign_checked, backbone_convs, depthwise_tap_position, fed_by, LogicalConv, logical_convs,
    model_conv)
from deeplab_ros.core.weights.convert.tflite_graph import (
    producer, resize_mode, single_consumer, TFLiteConversionError, TFLiteGraph, TFLiteOp)

MOBILENETV2 = 'MobileNetV2'
EDGETPU = 'MobileNet-EdgeTPU'
#: Depth multipliers the converter maps, by backbone and stem width.
_DEPTH_MULTIPLIERS_BY_STEM = {MOBILENETV2: {16: 0.5, 32: 1.0}, EDGETPU: {24: 0.75, 32: 1.0}}


def _through_passthrough(graph: TFLiteGraph, tensor: int) -> TFLiteOp | None:
    """The op producing ``tensor``, looking through resizes, tiles and (de)quantize ops."""
    op = producer(graph, tensor)
    while op is not None and op.name in ('RESIZE_BILINEAR', 'TILE', 'QUANTIZE', 'DEQUANTIZE'):
        op = producer(graph, op.inputs[0])
    return op


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
        chain.append(fed_by(convs, tensor, path, what))
        tensor = chain[-1].output
    return chain


def _backbone_family(file_convs: list[LogicalConv], path: Path) -> tuple[str, float]:
    """The backbone (:data:`MOBILENETV2` or :data:`EDGETPU`) and its depth multiplier.

    MobileNetV2's first block is a depthwise conv after the stem; MobileNet-EdgeTPU's first
    blocks are fused (dense convs only).
    """
    fused = file_convs[1].op.name == 'CONV_2D'
    backbone = EDGETPU if fused else MOBILENETV2
    multipliers = _DEPTH_MULTIPLIERS_BY_STEM[backbone]
    stem_channels = file_convs[0].weight.shape[0]
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
        raise TFLiteConversionError(f'{path}: a float graph has no activation quantization',
                                    setting='quantized_activations')
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
            add = single_consumer(graph, outputs[projection], 'ADD')
            if add is None:
                raise TFLiteConversionError(f'{path}: no residual ADD after the projection '
                                            f'of {names[block]}')
            table[names[block]] = graph.quantization(add.outputs[0])
    arg_max = next((op for op in graph.ops if op.name == 'ARG_MAX'), None)
    if arg_max is not None:
        table[''] = graph.quantization(arg_max.inputs[0])
    return table


def convert_mobilenetv2_graph(graph: TFLiteGraph, path: Path, *,
                              output_stride: int | None = None,
                              input_size: int = DEFAULT_INPUT_SIZE,
                              cuda_settings: tuple[int, int] = (0, 0),
                              quantized_activations: bool = False
                              ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert the graph of a DeepLab MobileNetV2 / MobileNet-EdgeTPU file (read from ``path``).

    Args:
        graph: The file's graph (:func:`~.tflite_graph.read_tflite`).
        path: The ``.tflite`` file, for messages and the metadata's ``source``.
        output_stride: As :func:`~deeplab_ros.core.weights.convert.convert_tflite`, which
            calls this; so are ``input_size``, ``cuda_settings`` and
            ``quantized_activations``.
        input_size: See ``output_stride``.
        cuda_settings: See ``output_stride``.
        quantized_activations: See ``output_stride``.
    """
    pools = [op for op in graph.ops if op.name == 'AVERAGE_POOL_2D']
    if len(pools) != 1:
        raise TFLiteConversionError(f'{path}: expected one image-pooling op, found {len(pools)}')
    pool = pools[0]
    convs = logical_convs(graph)
    file_backbone_convs = [conv for conv in convs if conv.op.index < pool.index]
    backbone, depth_multiplier = _backbone_family(file_backbone_convs, path)
    input_side = graph.input_shape[1]
    feature_side = graph.shapes[pool.inputs[0]][1]
    export_stride = round((input_side - 1) / (feature_side - 1))
    pooled = fed_by(convs, pool.outputs[0], path, 'image-pooling conv')
    aspp0 = fed_by(convs, pool.inputs[0], path, '1x1 branch on the backbone features')
    concats = [op for op in graph.ops if op.name == 'CONCATENATION']
    order = [_through_passthrough(graph, tensor) for tensor in concats[0].inputs]
    if [op.index for op in order if op] != [pooled.op.index, aspp0.op.index]:
        raise TFLiteConversionError(f'{path}: head concatenation is not [pooling, 1x1]')
    projection = fed_by(convs, concats[0].outputs[0], path, 'head projection')
    resize = resize_mode(graph, path)
    layers: list[tuple[nn.Conv2d, LogicalConv, str]]
    if len(concats) == 1:
        if resize != 'align_corners':
            raise TFLiteConversionError(f'{path}: resizes use {resize}; the DeepLabV3 model '
                                        'assumes align_corners=True')
        logits = fed_by(convs, projection.output, path, 'logits conv')
        variant = 'deeplabv3_mobilenetv2'
        options: dict[str, Any] = {'depth_multiplier': depth_multiplier}
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
    ours = backbone_convs(model)
    if len(ours) != len(file_backbone_convs):
        raise TFLiteConversionError(f'{path}: {len(file_backbone_convs)} backbone convs in '
                                    f'the file, {len(ours)} in the model')
    layers = [(conv, source, activation)
              for (conv, activation), source in zip(ours, file_backbone_convs)]
    layers += [(model_conv(model, 'head.image_pooling.0'), pooled, 'relu'),
               (model_conv(model, 'head.aspp0.0'), aspp0, 'relu'),
               (model_conv(model, 'head.concat_projection.0'), projection, 'relu')]
    if len(concats) == 1:
        layers.append((model_conv(model, 'head.logits'), logits, 'none'))
    else:
        targets = [('feature_projection.0', 'relu'),
                   ('decoder_conv0.0', 'relu'), ('decoder_conv0.2', 'relu'),
                   ('decoder_conv1.0', 'relu'), ('decoder_conv1.2', 'relu'),
                   ('logits', 'none')]
        layers += [(model_conv(model, f'decoder.{name}'), source, activation)
                   for (name, activation), source in zip(targets, decoder_convs)]
        tap = file_backbone_convs[depthwise_tap_position(model, LOW_LEVEL_BLOCK)]
        if decoder_convs[0].input != tap.output:
            raise TFLiteConversionError(
                f'{path}: the decoder reads tensor {decoder_convs[0].input}, not the stride-4 '
                f'block\'s depthwise output (tensor {tap.output})')
    for conv, source, activation in layers:
        assign_checked(conv, source, activation)
    if quantized_activations:
        if variant == 'deeplabv3_mobilenetv2':
            raise TFLiteConversionError(f'{path}: activation quantization is emulated for '
                                        'DeepLabV3+ and MobileNet-EdgeTPU models only',
                                        setting='quantized_activations')
        options['activation_quantization'] = _activation_table(graph, model, layers, path)
        quantize_activations(model, options['activation_quantization'])
    labels = label_set_for(num_classes)
    kind = 'uint8 quantized, dequantized' if graph.quantized_input else \
        'float32 input, int8 weights dequantized' if graph.has_int8_weights() else 'float32'
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
