"""ONNX export of any registered model, with its metadata, and the cache of exported files.

    from deeplab_ros.core.inference.onnx_export import export_onnx, read_onnx_metadata
    export_onnx(model, metadata, 'model.onnx', input_size=513)   # for trtexec, Isaac ROS, ...

The graph takes ``input`` (float, ``[N, 3, S, S]``, normalised with the model's mean/std) and
returns ``logits``: at the network's own resolution (``[N, classes, h, w]``, the graph the
segmenter runs; ``logits_resize`` in the metadata names the bilinear convention that maps
them to the input, :mod:`~deeplab_ros.core.models.logits`), or with
``ExportSettings(full_resolution=True)`` resized to the input (``[N, classes, S, S]``). The
batch dimension is dynamic (named ``batch``) unless a fixed batch size is asked for. The
file's metadata (``metadata_props``) carries the class names, palette, mean/std, input size,
output stride, variant, precision and batch size, and a key naming the weights and settings
it was built from, plus a digest of the graph: :func:`cached_onnx` rebuilds a cached file
whenever either does not match, so a stale or corrupt file is never trusted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
import hashlib
import json
from pathlib import Path
from typing import Any
import warnings

import torch

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.files import atomic_write
from deeplab_ros.core.models.logits import logits_resize, LogitsOnly
from deeplab_ros.core.weights.checkpoint import CheckpointMetadata
from deeplab_ros.core.weights.locations import cache_dir

ONNX_OPSET = 17
INPUT_NAME = 'input'
OUTPUT_NAME = 'logits'
#: Bumped whenever the exported graph changes for the same weights and settings.
EXPORT_FORMAT = 2
KEY_PROPERTY = 'deeplab_ros.key'
#: The output's height and width (JSON ``[h, w]``): the graph records them symbolically.
LOGITS_SIZE_PROPERTY = 'logits_size'
DIGEST_PROPERTY = 'deeplab_ros.graph_sha256'
ONNX_INSTALL_HINT = 'install ONNX support with: pip install onnx onnxruntime'


class OnnxExportError(ConfigurationError):
    """The model cannot be exported, or the ``onnx`` package is missing."""


@dataclass(frozen=True)
class ExportSettings:
    """What an exported graph depends on besides the weights."""

    input_size: int
    batch_size: int = 1
    dynamic_batch: bool = True
    half: bool = False
    full_resolution: bool = False  # logits resized to the input inside the graph

    @property
    def precision(self) -> str:
        """``'fp16'`` or ``'fp32'``."""
        return 'fp16' if self.half else 'fp32'

    def file_suffix(self) -> str:
        """Settings part of a cached file's name, e.g. ``s513.fp32.b1d.logits``."""
        batch = f'b{self.batch_size}' + ('d' if self.dynamic_batch else '')
        output = '' if self.full_resolution else '.logits'
        return f's{self.input_size}.{self.precision}.{batch}{output}'


def _require_onnx():
    try:
        import onnx
    except ImportError as error:
        raise OnnxExportError(f'the onnx package is not installed; {ONNX_INSTALL_HINT}') \
            from error
    return onnx


def weights_digest(model: torch.nn.Module, metadata: CheckpointMetadata) -> str:
    """SHA-256 over the architecture settings and every tensor of the model's state."""
    digest = hashlib.sha256()
    digest.update(json.dumps({'variant': metadata.variant, 'classes': metadata.num_classes,
                              'stride': metadata.output_stride,
                              'options': metadata.model_options},
                             sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        value = tensor.detach().to('cpu').contiguous().reshape(-1)
        digest.update(f'{name}:{value.dtype}:{tuple(value.shape)}'.encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b'')
    return digest.hexdigest()


def export_key(weights_sha256: str, metadata: CheckpointMetadata,
               settings: ExportSettings) -> str:
    """The key a cached export must carry: weights, settings, output resolution, format."""
    text = json.dumps({'weights': weights_sha256, 'input_size': settings.input_size,
                       'output_stride': metadata.output_stride,
                       'precision': settings.precision, 'batch_size': settings.batch_size,
                       'dynamic_batch': settings.dynamic_batch,
                       'full_resolution': settings.full_resolution, 'opset': ONNX_OPSET,
                       'format': EXPORT_FORMAT}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _graph_digest(onnx_model) -> str:
    return hashlib.sha256(onnx_model.graph.SerializeToString()).hexdigest()


def export_onnx(model: torch.nn.Module, metadata: CheckpointMetadata, path: str | Path, *,
                settings: ExportSettings, key: str = '',
                device: torch.device | None = None) -> Path:
    """Write ``model`` as an ONNX file with the metadata; atomic (a temporary file renamed).

    Args:
        model: A registered model (``[N, 3, S, S]`` in, logits out).
        metadata: Its checkpoint metadata (class names, normalisation, stride, ...).
        path: Where to write.
        settings: Input size, batch size (fixed or dynamic), precision, output resolution.
        key: Stored as :data:`KEY_PROPERTY` (the cache key); computed when empty.
        device: Where to trace the model (default: where its parameters are).
    """
    onnx = _require_onnx()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    device = device or next(model.parameters()).device
    dtype = torch.float16 if settings.half else torch.float32
    first = next(model.parameters())
    # The caller's model stays as it is: a copy is moved when the device or type differs.
    moved = model if (first.device, first.dtype) == (device, dtype) else \
        copy.deepcopy(model).to(device, dtype)
    traced = (moved if settings.full_resolution else LogitsOnly(moved)).eval()
    sample = torch.zeros((max(1, settings.batch_size), 3, settings.input_size,
                          settings.input_size), dtype=dtype, device=device)
    axes = {INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}} \
        if settings.dynamic_batch else None
    try:
        with atomic_write(target, suffix='.onnx') as temporary, \
                torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which
            # needs onnxscript; this one is verified on every registered model here.
            warnings.simplefilter('ignore', DeprecationWarning)
            torch.onnx.export(traced, (sample,), temporary, opset_version=ONNX_OPSET,
                              dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes=axes)
            logits_size = tuple(traced(sample[:1]).shape[-2:])
            exported = onnx.load(temporary)
            key = key or export_key(weights_digest(model, metadata), metadata, settings)
            properties = _metadata_properties(metadata, settings, logits_resize(model))
            properties[LOGITS_SIZE_PROPERTY] = json.dumps(list(logits_size))
            properties[KEY_PROPERTY] = key
            properties[DIGEST_PROPERTY] = _graph_digest(exported)
            onnx.helper.set_model_props(exported, properties)
            exported.producer_name = 'deeplab_ros'
            onnx.save(exported, temporary)
    except OnnxExportError:
        raise
    except Exception as error:  # noqa: BLE001 - the exporter raises many kinds
        raise OnnxExportError(f'ONNX export of {metadata.variant} failed: '
                              f'{type(error).__name__}: {error}') from error
    return target


def _metadata_properties(metadata: CheckpointMetadata, settings: ExportSettings,
                         resize: str) -> dict[str, str]:
    labels = metadata.label_set()
    output = ('logits NCHW at the input resolution; labels = arg-max over channels'
              if settings.full_resolution else
              'logits NCHW at the network resolution; labels = arg-max over channels of the '
              'logits resized bilinearly to the input (logits_resize)')
    return {
        'variant': metadata.variant,
        'num_classes': str(metadata.num_classes),
        'class_names': json.dumps(list(labels.class_names)),
        'palette': json.dumps([list(color) for color in labels.palette]),
        'mean': json.dumps(list(metadata.mean)),
        'std': json.dumps(list(metadata.std)),
        'input_scale': '1/255 (uint8 RGB -> [0, 1]), then (x - mean) / std per channel',
        'input_size': str(settings.input_size),
        'output_stride': str(metadata.output_stride),
        'precision': settings.precision,
        'batch_size': 'dynamic' if settings.dynamic_batch else str(settings.batch_size),
        'input_layout': 'NCHW RGB',
        'output': output,
        'logits_resize': resize,
        'source': metadata.source,
    }


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (class names etc. are JSON text)."""
    onnx = _require_onnx()
    return {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}


def logits_size(properties: dict[str, str]) -> tuple[int, int]:
    """The output's (height, width) recorded in an export's metadata."""
    height, width = json.loads(properties[LOGITS_SIZE_PROPERTY])
    return int(height), int(width)


def valid_cached_export(path: Path, key: str) -> bool:
    """Whether ``path`` is a complete export carrying ``key`` (unreadable -> False)."""
    onnx = _require_onnx()
    if not path.is_file():
        return False
    try:
        loaded = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - a corrupt file raises protobuf/OS errors alike
        return False
    properties = {entry.key: entry.value for entry in loaded.metadata_props}
    return properties.get(KEY_PROPERTY) == key and \
        properties.get(DIGEST_PROPERTY) == _graph_digest(loaded)


def cached_onnx(model: torch.nn.Module, metadata: CheckpointMetadata, folder: Path,
                stem: str, settings: ExportSettings,
                device: torch.device | None = None) -> tuple[Path, bool]:
    """The cached export for these weights and settings, built when absent, stale or corrupt.

    Returns ``(path, rebuilt)``. The file is ``folder/<stem>.<settings>.onnx``; its key
    (weights digest and settings) and graph digest are checked on every use.
    """
    key = export_key(weights_digest(model, metadata), metadata, settings)
    path = folder / f'{stem}.{settings.file_suffix()}.onnx'
    if valid_cached_export(path, key):
        return path, False
    export_onnx(model, metadata, path, settings=settings, key=key, device=device)
    return path, True


def describe(properties: dict[str, Any]) -> str:
    """One line summarising an export's metadata (for command output)."""
    names = json.loads(properties.get('class_names', '[]'))
    size = 'x'.join(str(side) for side in json.loads(
        properties.get(LOGITS_SIZE_PROPERTY, '["?"]')))
    full = size == f"{properties.get('input_size')}x{properties.get('input_size')}"
    output = f'logits {size}' + ('' if full else
                                 f" ({properties.get('logits_resize', '?')} to the input)")
    return (f"{properties.get('variant', '?')}: {len(names)} classes, input "
            f"{properties.get('input_size', '?')}, output stride "
            f"{properties.get('output_stride', '?')}, {properties.get('precision', '?')}, "
            f"batch {properties.get('batch_size', '?')}, {output}")


def onnx_cache_stem(weights_path: Path | None, metadata: CheckpointMetadata) -> str:
    """File-name stem of a model's cached ONNX exports (its checkpoint's, made unique).

    Checkpoints in the cache folder (the converted pretrained models) keep their own stem;
    others get a short digest of their absolute path, so two ``model.pt`` files in different
    folders do not take turns overwriting one export. Models without a file use the variant.
    """
    if weights_path is None:
        return f'{metadata.variant}-unsaved'
    path = Path(weights_path).resolve()
    if path.parent == cache_dir().resolve():
        return path.stem
    return f'{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}'
