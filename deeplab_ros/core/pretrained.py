"""Pretrained models: Google's DeepLab MobileNetV2 TFLite releases, converted once.

ADE20K (150 scene classes + "other"; the default) and ADE20K-32 with DeepLabV3+, PASCAL VOC
(21 classes) with DeepLabV3.

The TFLite files live in ``<shared>/weights``; their converted checkpoints are cached in
:func:`~deeplab_ros.core.assets.cache_dir` and rebuilt when the source is newer or the cached
file is unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import tempfile

from deeplab_ros.core.assets import cache_dir, GOOGLE_RELEASES_HINT, shared_path
from deeplab_ros.core.checkpoint import CheckpointError, read_checkpoint


@dataclass(frozen=True)
class PretrainedSpec:
    """A pretrained model: its TFLite source in the shared weights folder and a summary."""

    name: str
    tflite_file: str
    summary: str
    sha256: str = ''
    input_size: int = 513
    output_stride: int | None = None
    cuda_settings: tuple[int, int] = (0, 0)


#: CPU run settings of the ADE20K DeepLabV3+ (exported at 513, output stride 8), chosen from
#: mIoU on the shared ADE20K images against CPU cost (README, "Models and accuracy"); on CUDA
#: it runs at its export setting.
ADE20K_INPUT_SIZE = 385
ADE20K_OUTPUT_STRIDE = 16

PRETRAINED: dict[str, PretrainedSpec] = {spec.name: spec for spec in (
    PretrainedSpec('deeplabv3_mnv2_dm05_float', 'deeplabv3_257_mv_gpu.tflite',
                   'DeepLabV3 MobileNetV2 dm0.5, output stride 8, float32 '
                   '(mobilenetv2_dm05_coco_voc_trainaug)'),
    PretrainedSpec('deeplabv3_mnv2_dm10_dequant', 'deeplabv3_mnv2_pascal_quant.tflite',
                   'DeepLabV3 MobileNetV2 dm1.0, output stride 16, dequantized from uint8 '
                   '(mobilenetv2_coco_voc_trainaug)'),
    PretrainedSpec('deeplabv3_mnv2_dm05_dequant', 'deeplabv3_mnv2_dm05_pascal_quant.tflite',
                   'DeepLabV3 MobileNetV2 dm0.5, output stride 16, dequantized from uint8'),
    PretrainedSpec('deeplabv3plus_mnv2_ade20k',
                   'lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite',
                   'DeepLabV3+ MobileNetV2, ADE20K 150 classes + other, exported at output '
                   'stride 8, int8 weights dequantized (deeplabv3_mnv2_ade20k_train_2018_12_03)',
                   sha256='9476784566f88bf0bdc3169f0012fb7d08857b325811d8c1aaf5ada1c0d4e4f9',
                   input_size=ADE20K_INPUT_SIZE, output_stride=ADE20K_OUTPUT_STRIDE,
                   cuda_settings=(513, 8)),
    PretrainedSpec('deeplabv3plus_mnv2_ade20k32_dequant', 'deeplabv3_mnv2_ade20k_uint8.tflite',
                   'DeepLabV3+ MobileNetV2, ADE20K-32 (MLPerf Mobile), output stride 16, '
                   'dequantized from uint8',
                   sha256='2d58c681d81b5e181816b81cc815b82edf3daad905b4d7d35afade80aee93b5f',
                   input_size=512),
)}

#: The default: MobileNetV2 DeepLabV3+ on ADE20K, whose scene classes (road, sidewalk, floor,
#: wall, table, person, car, ...) are what robots need. Of the VOC models the most accurate on
#: the shared VOC images at input 513 is ``deeplabv3_mnv2_dm05_float`` (mIoU 0.809).
DEFAULT_PRETRAINED = 'deeplabv3plus_mnv2_ade20k'

PRETRAINED_PREFIX = 'pretrained'


def available_pretrained() -> tuple[str, ...]:
    """Names of the pretrained models."""
    return tuple(PRETRAINED)


def pretrained_checkpoint(name: str = DEFAULT_PRETRAINED) -> Path:
    """Return the converted checkpoint of a pretrained model, converting it on first use.

    Raises:
        ValueError: ``name`` is not a pretrained model.
        MissingAssetError: its TFLite file is not in the shared weights folder.
    """
    from deeplab_ros.core.tflite_convert import convert_tflite_file

    if name not in PRETRAINED:
        raise ValueError(f'Unknown pretrained model {name!r}. Available: '
                         f'{", ".join(PRETRAINED)}.')
    spec = PRETRAINED[name]
    source = shared_path(f'weights/{spec.tflite_file}', hint=GOOGLE_RELEASES_HINT)
    target = cache_dir() / f'{name}.pt'
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        try:
            read_checkpoint(target)
            return target
        except CheckpointError:
            pass  # unreadable cache: convert again
    handle, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix='.pt', dir=target.parent)
    os.close(handle)
    try:
        convert_tflite_file(source, temporary, expected_sha256=spec.sha256 or None,
                            input_size=spec.input_size, output_stride=spec.output_stride,
                            cuda_settings=spec.cuda_settings)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def resolve_weights(spec: str | Path) -> Path:
    """Turn a weights setting into a checkpoint path.

    ``''`` or ``'pretrained'`` -> the default pretrained model; ``'pretrained:NAME'`` -> that
    one; anything else is a file path, which must exist.
    """
    text = str(spec).strip()
    if text in ('', PRETRAINED_PREFIX):
        return pretrained_checkpoint(DEFAULT_PRETRAINED)
    if text.startswith(PRETRAINED_PREFIX + ':'):
        return pretrained_checkpoint(text.split(':', 1)[1])
    path = Path(text).expanduser()
    if not path.is_file():
        raise CheckpointError(f'Weights file not found: {path} (use "pretrained", '
                              f'"pretrained:NAME" with NAME in {", ".join(PRETRAINED)}, '
                              'or the path of a checkpoint).')
    return path
