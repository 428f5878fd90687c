"""Pretrained models: published TFLite files, converted once into self-sufficient checkpoints.

ADE20K (150 scene classes + "other"; the default) and ADE20K-32 with DeepLabV3+, PASCAL VOC
(21 classes) with DeepLabV3, Cityscapes (19 classes) with MobileNetV3-Large DeepLab
(LR-ASPP-style head) and with DeepLabV3 on MobileNet-EdgeTPU.

The registry :data:`PRETRAINED` is a table: each row names the published file, its URL, its
sha256 and the converter that turns it into a PyTorch model with metadata. Preparing a model
(:func:`pretrained_checkpoint`) looks, in order:

1. in the cache (:func:`~deeplab_ros.core.weights.locations.cache_dir`): a converted
   checkpoint whose metadata records the expected source sha256 and the same conversion
   (:func:`conversion_key`: converter name, :data:`CONVERSION_REVISION`, run settings) is used
   as it is; the source file is not needed again. Converters are named by a stable name from
   :data:`CONVERTERS`, never by where their code lives, so moving code does not invalidate
   caches; caches that recorded the converter's former module path
   (:data:`LEGACY_CONVERTER_PATHS`) are still used;
2. for the source file, in the user weights folders
   (:func:`~deeplab_ros.core.weights.locations.user_weights_dirs`, ``DEEPLAB_ROS_WEIGHTS_PATH``);
3. in ``<shared>/weights`` (:func:`~deeplab_ros.core.weights.locations.shared_dir`);
4. at the publisher's URL: downloaded with a sha256 check and a progress bar.

A source found is checked against its sha256, converted and cached; a downloaded source is
removed after conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.weights.checkpoint import CheckpointError, DEFAULT_INPUT_SIZE, \
    read_checkpoint, save_checkpoint
from deeplab_ros.core.weights.convert import CONVERTERS, Converter
from deeplab_ros.core.weights.download import download, DownloadError, ProgressCallback, \
    text_progress, verify_sha256
from deeplab_ros.core.weights.locations import cache_dir, MissingAssetError, shared_dir, \
    user_weights_dirs, WEIGHTS_PATH_ENV

#: What caches written before converters had names recorded instead of the name: the
#: converter's ``module:function`` path. Only read, to keep using those caches.
LEGACY_CONVERTER_PATHS = {
    'tflite': 'deeplab_ros.core.tflite_convert:convert_tflite',
    'tflite-mnv3': 'deeplab_ros.core.tflite_mobilenetv3:convert_mobilenetv3_tflite',
}
TFLITE_CONVERTER = 'tflite'
MOBILENETV3_CONVERTER = 'tflite-mnv3'
_TF_GPU_MODELS = 'https://storage.googleapis.com/download.tensorflow.org/models/tflite/gpu/'
_CORAL_TEST_DATA = 'https://github.com/google-coral/test_data/raw/master/'
_TF_HUB_LITE = 'https://tfhub.dev/sayakpaul/lite-model/'
_MLPERF_MOBILE = 'https://github.com/mlcommons/mobile_models/raw/main/v0_7/tflite/'


@dataclass(frozen=True)
class PretrainedSpec:
    """A pretrained model: its published source file and how to convert it.

    Attributes:
        name: The name used in ``weights: pretrained:NAME``.
        tflite_file: File name of the published source.
        summary: One line for listings.
        url: Where the publisher serves the file ('' = no download source).
        sha256: Hex sha256 of the published file ('' = not checked).
        converter: Name of the converter in :data:`CONVERTERS`.
        input_size: Recommended input side on the CPU, stored in the metadata.
        output_stride: Output stride the checkpoint runs at (None: the export's).
        cuda_settings: Recommended (input size, output stride) on CUDA (0: as on the CPU).
    """

    name: str
    tflite_file: str
    summary: str
    url: str = ''
    sha256: str = ''
    converter: str = TFLITE_CONVERTER
    input_size: int = DEFAULT_INPUT_SIZE
    output_stride: int | None = None
    cuda_settings: tuple[int, int] = (0, 0)


#: Revision of the converters' output. Raise it whenever a converter produces different
#: weights for the same source file, so that cached conversions are redone. Metadata that
#: can be corrected when read (ADE20K's whole class names, ``labels.upgrade_class_names``)
#: does not need a new revision: a robot keeps using what it converted.
CONVERSION_REVISION = 2

#: CPU run settings of the ADE20K DeepLabV3+ (exported at 513, output stride 8), chosen from
#: mIoU on the shared ADE20K images against CPU cost; on CUDA it runs at its export setting
#: (docs/models.md#input-size-and-output-stride).
ADE20K_INPUT_SIZE = 385
ADE20K_OUTPUT_STRIDE = 16
#: CPU input side of the Cityscapes MobileNetV3 (exported at 1025x2049): 769 is its training
#: crop, where the image pooling is global as in training (docs/models.md#cityscapes-mobilenetv3).
CITYSCAPES_MNV3_INPUT_SIZE = 769


#: CPU input size of the MobileNet-EdgeTPU Cityscapes model (exported at 513, output stride 16).
EDGETPU_CITYSCAPES_INPUT_SIZE = DEFAULT_INPUT_SIZE


PRETRAINED: dict[str, PretrainedSpec] = {spec.name: spec for spec in (
    PretrainedSpec('deeplabv3_mnv2_dm05_float', 'deeplabv3_257_mv_gpu.tflite',
                   'DeepLabV3 MobileNetV2 dm0.5, output stride 8, float32 '
                   '(mobilenetv2_dm05_coco_voc_trainaug)',
                   _TF_GPU_MODELS + 'deeplabv3_257_mv_gpu.tflite',
                   '68a539782c2c6a72f8aac3724600124a85ed977162b44e84cbae5db717c933c6'),
    PretrainedSpec('deeplabv3_mnv2_dm10_dequant', 'deeplabv3_mnv2_pascal_quant.tflite',
                   'DeepLabV3 MobileNetV2 dm1.0, output stride 16, dequantized from uint8 '
                   '(mobilenetv2_coco_voc_trainaug)',
                   _CORAL_TEST_DATA + 'deeplabv3_mnv2_pascal_quant.tflite',
                   '350af47fd346ea6d74b58833a351f583ba860e9806ec5bd292ff8d8f1f249398'),
    PretrainedSpec('deeplabv3_mnv2_dm05_dequant', 'deeplabv3_mnv2_dm05_pascal_quant.tflite',
                   'DeepLabV3 MobileNetV2 dm0.5, output stride 16, dequantized from uint8',
                   _CORAL_TEST_DATA + 'deeplabv3_mnv2_dm05_pascal_quant.tflite',
                   '0470d2a782aa54eeeb99d32e7b6b3fb7722905c7c4f5d26bd957ec861366d48b'),
    PretrainedSpec('deeplabv3plus_mnv2_ade20k',
                   'lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite',
                   'DeepLabV3+ MobileNetV2, ADE20K 150 classes + other, exported at output '
                   'stride 8, int8 weights dequantized (deeplabv3_mnv2_ade20k_train_2018_12_03)',
                   _TF_HUB_LITE + 'deeplabv3-mobilenetv2-ade20k/1/default/1?lite-format=tflite',
                   '9476784566f88bf0bdc3169f0012fb7d08857b325811d8c1aaf5ada1c0d4e4f9',
                   input_size=ADE20K_INPUT_SIZE, output_stride=ADE20K_OUTPUT_STRIDE,
                   cuda_settings=(513, 8)),
    PretrainedSpec('deeplabv3plus_mnv2_ade20k32_dequant', 'deeplabv3_mnv2_ade20k_uint8.tflite',
                   'DeepLabV3+ MobileNetV2, ADE20K-32 (MLPerf Mobile), output stride 16, '
                   'dequantized from uint8',
                   _MLPERF_MOBILE + 'deeplabv3_mnv2_ade20k_uint8.tflite',
                   '2d58c681d81b5e181816b81cc815b82edf3daad905b4d7d35afade80aee93b5f',
                   input_size=512),
    PretrainedSpec('lraspp_mnv3_cityscapes',
                   'lite-model_deeplabv3-mobilenetv3-cityscapes_1_default_2.tflite',
                   'MobileNetV3-Large DeepLab (LR-ASPP-style head), Cityscapes 19 classes, '
                   'output stride 32, int8 weights dequantized '
                   '(deeplab_mnv3_large_cityscapes_trainfine_2019_11_15)',
                   _TF_HUB_LITE + 'deeplabv3-mobilenetv3-cityscapes/1/default/2'
                   '?lite-format=tflite',
                   '152e75abcbf2ef24f681b0a049afb45bfb87f0e54c7f00883772850ff141549e',
                   converter=MOBILENETV3_CONVERTER, input_size=CITYSCAPES_MNV3_INPUT_SIZE,
                   cuda_settings=(1025, 0)),
    PretrainedSpec('deeplabv3_mnedgetpu_cityscapes',
                   'deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite',
                   'DeepLabV3 MobileNet-EdgeTPU dm0.75 (slim head), Cityscapes 19 classes, '
                   'output stride 16, dequantized from uint8',
                   _CORAL_TEST_DATA + 'deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite',
                   '322fe29945cb1693f426952f2a330ab67ea5678545ddee6f2548e0cfd0ca03e5',
                   input_size=EDGETPU_CITYSCAPES_INPUT_SIZE),
)}

#: The default: MobileNetV2 DeepLabV3+ on ADE20K, whose scene classes (road, sidewalk, floor,
#: wall, table, person, car, ...) are what robots need. Of the VOC models the most accurate on
#: the shared VOC images is ``deeplabv3_mnv2_dm05_float`` (docs/models.md#pretrained-models).
DEFAULT_PRETRAINED = 'deeplabv3plus_mnv2_ade20k'

PRETRAINED_PREFIX = 'pretrained'


def available_pretrained() -> tuple[str, ...]:
    """Names of the pretrained models."""
    return tuple(PRETRAINED)


def pretrained_spec(name: str) -> PretrainedSpec:
    """Return the registry row of ``name``.

    Raises:
        InvalidSettingError: ``name`` is unknown; the message lists the known names.
    """
    if name not in PRETRAINED:
        raise InvalidSettingError(f'Unknown pretrained model {name!r}. Available: '
                                  f'{", ".join(PRETRAINED)}.', setting='weights')
    return PRETRAINED[name]


def cached_checkpoint_path(name: str) -> Path:
    """Where the converted checkpoint of ``name`` is cached."""
    return cache_dir() / f'{name}.pt'


def conversion_key(spec: PretrainedSpec) -> str:
    """What a cached conversion of ``spec`` must record to be reused as it is.

    The converter's name, :data:`CONVERSION_REVISION` and the run settings stored in the
    metadata: a changed row or converter makes the cache convert its source again.
    """
    return _key(spec.converter, spec)


def accepted_conversion_keys(spec: PretrainedSpec) -> tuple[str, ...]:
    """The keys with which a cached conversion of ``spec`` is used as it is.

    :func:`conversion_key`, and the same key with the converter's former module path in place
    of its name (:data:`LEGACY_CONVERTER_PATHS`), as caches written before converters had
    names record it.
    """
    legacy = LEGACY_CONVERTER_PATHS.get(spec.converter)
    return (conversion_key(spec),) + ((_key(legacy, spec),) if legacy else ())


def _key(converter: str, spec: PretrainedSpec) -> str:
    return (f'{converter} r{CONVERSION_REVISION} input_size={spec.input_size} '
            f'output_stride={spec.output_stride} cuda={spec.cuda_settings[0]}/'
            f'{spec.cuda_settings[1]}')


def is_cached(spec: PretrainedSpec) -> bool:
    """True when the cache holds a readable, current conversion of exactly ``spec``'s source."""
    path = cached_checkpoint_path(spec.name)
    if not path.is_file():
        return False
    try:
        _, metadata = read_checkpoint(path)
    except CheckpointError:
        return False
    return (metadata is not None and metadata.conversion in accepted_conversion_keys(spec)
            and (not spec.sha256 or metadata.source_sha256 == spec.sha256))


def source_candidates(spec: PretrainedSpec) -> list[Path]:
    """Where the source file is looked for, in order: user weights folders, shared weights."""
    return [folder / spec.tflite_file
            for folder in (*user_weights_dirs(), shared_dir() / 'weights')]


def _checked_source(spec: PretrainedSpec, path: Path) -> str:
    return verify_sha256(path, spec.sha256, error=CheckpointError,
                         what=f'the published {spec.tflite_file} of {spec.name!r}')


def converter(name: str) -> Converter:
    """The converter registered as ``name`` in :data:`CONVERTERS`.

    Raises:
        InvalidSettingError: no converter has that name.
    """
    if name not in CONVERTERS:
        raise InvalidSettingError(f'Unknown converter {name!r}. Known: '
                                  f'{", ".join(CONVERTERS)}.', setting='weights')
    return CONVERTERS[name]


def _convert_into_cache(spec: PretrainedSpec, source: Path, digest: str) -> Path:
    model, metadata = converter(spec.converter)(source, input_size=spec.input_size,
                                                output_stride=spec.output_stride,
                                                cuda_settings=spec.cuda_settings)
    metadata.source_sha256 = digest
    metadata.conversion = conversion_key(spec)
    return save_checkpoint(cached_checkpoint_path(spec.name), model, metadata)


def not_found_message(spec: PretrainedSpec, reason: str) -> str:
    """Why ``spec`` could not be prepared, naming the file, its URL and where to put it."""
    places = ', '.join(str(path.parent) for path in source_candidates(spec))
    url = spec.url or '(no download source registered)'
    return (f'Pretrained model {spec.name!r} is not prepared on this machine: no converted '
            f'checkpoint at {cached_checkpoint_path(spec.name)} and its source file '
            f'{spec.tflite_file} is in none of {places}; {reason}. Download {url} '
            f'(sha256 {spec.sha256 or "unknown"}) and put it in {user_weights_dirs()[0]} '
            f'(or a folder named in {WEIGHTS_PATH_ENV}), then configure again or run '
            f'`ros2 run deeplab_ros deeplab-ros-models fetch {spec.name}`.')


def pretrained_checkpoint(name: str = DEFAULT_PRETRAINED, *, allow_download: bool = True,
                          progress: ProgressCallback | None = None) -> Path:
    """Return the converted checkpoint of a pretrained model, preparing it on first use.

    Args:
        progress: Download progress callback (default: a progress bar on stderr).

    Raises:
        InvalidSettingError: ``name`` is not a pretrained model.
        CheckpointError: a source file found locally is not the published one (sha256).
        MissingAssetError: not cached, no source file found locally, and the download was
            not allowed or failed; the message says what to fetch and where to put it.
    """
    spec = pretrained_spec(name)
    if is_cached(spec):
        return cached_checkpoint_path(name)
    for candidate in source_candidates(spec):
        if candidate.is_file():
            return _convert_into_cache(spec, candidate, _checked_source(spec, candidate))
    if not allow_download or not spec.url or not spec.sha256:
        reason = 'downloading was not allowed' if spec.url and spec.sha256 else \
            'it has no download source with a checksum'
        raise MissingAssetError(not_found_message(spec, reason), setting='weights')
    downloaded = cache_dir() / 'downloads' / spec.tflite_file
    try:
        download(spec.url, downloaded, spec.sha256,
                 progress=progress or text_progress(f'downloading {spec.tflite_file}'))
    except DownloadError as error:
        raise MissingAssetError(not_found_message(spec, str(error)),
                                setting='weights') from error
    try:
        return _convert_into_cache(spec, downloaded, spec.sha256)
    finally:
        downloaded.unlink(missing_ok=True)


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
                              'or the path of a checkpoint).', setting='weights')
    return path
