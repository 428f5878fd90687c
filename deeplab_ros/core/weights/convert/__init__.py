"""Converters from published weight files into checkpoints with metadata.

One reader per file format and one converter per model family:

- :mod:`.tflite_graph`: reads a TFLite flatbuffer once into a graph of ops and tensors;
- :mod:`.tflite_convs`: the graph's convs as logical layers, and their checked transfer into a
  model's convs;
- :mod:`.deeplab_mobilenetv2`: DeepLabV3 / DeepLabV3+ on MobileNetV2 and MobileNet-EdgeTPU;
- :mod:`.deeplab_mobilenetv3`: MobileNetV3-Large DeepLab (LR-ASPP-style head);
- :mod:`.vainf`: VainF DeepLabV3Plus-Pytorch MobileNet checkpoints.

:func:`convert_tflite` reads a ``.tflite`` file and hands its graph to the family it belongs to
(a graph that computes hard-swish is MobileNetV3's). :data:`CONVERTERS` names the converters
that prepare pretrained models by the stable name their cached conversions record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, DEFAULT_INPUT_SIZE, \
    save_checkpoint
from deeplab_ros.core.weights.convert.deeplab_mobilenetv2 import convert_mobilenetv2_graph
from deeplab_ros.core.weights.convert.deeplab_mobilenetv3 import (
    convert_mobilenetv3_graph, convert_mobilenetv3_tflite, is_mobilenetv3)
from deeplab_ros.core.weights.convert.tflite_graph import read_tflite, TFLiteConversionError
from deeplab_ros.core.weights.convert.vainf import convert_vainf
from deeplab_ros.core.weights.download import verify_sha256

__all__ = ['convert_mobilenetv3_tflite', 'convert_tflite', 'convert_tflite_file',
           'convert_vainf', 'CONVERTERS', 'Converter', 'TFLiteConversionError']

#: A converter: the source path and keyword run settings (``input_size``, ``output_stride``,
#: ``cuda_settings``) in, ``(model, metadata)`` out.
Converter = Callable[..., tuple[nn.Module, CheckpointMetadata]]


def convert_tflite(path: str | Path, *, expected_sha256: str | None = None,
                   output_stride: int | None = None, input_size: int = DEFAULT_INPUT_SIZE,
                   cuda_settings: tuple[int, int] = (0, 0), quantized_activations: bool = False
                   ) -> tuple[nn.Module, CheckpointMetadata]:
    """Convert a Google DeepLab TFLite model into a model and its metadata.

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
            MobileNet-EdgeTPU models; refused for the others).
    """
    path = Path(path)
    if expected_sha256 is not None:
        verify_sha256(path, expected_sha256, what='the expected model',
                      error=TFLiteConversionError)
    graph = read_tflite(path)
    family = convert_mobilenetv3_graph if is_mobilenetv3(graph) else convert_mobilenetv2_graph
    return family(graph, path, output_stride=output_stride, input_size=input_size,
                  cuda_settings=cuda_settings, quantized_activations=quantized_activations)


def convert_tflite_file(path: str | Path, output: str | Path, **options: Any) -> Path:
    """Convert ``path`` (options as :func:`convert_tflite`) and save it at ``output``."""
    model, metadata = convert_tflite(path, **options)
    return save_checkpoint(output, model, metadata)


#: Converters by the stable name that pretrained rows and their cached conversions record
#: (the name, never the code's location, is part of the cache key).
CONVERTERS: dict[str, Converter] = {
    'tflite': convert_tflite,
    'tflite-mnv3': convert_mobilenetv3_tflite,
}
