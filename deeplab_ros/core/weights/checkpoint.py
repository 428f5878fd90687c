"""Checkpoints: save with metadata, load strictly, and explain every problem in plain words.

A checkpoint written here is ``{'model_state': state_dict, 'metadata': {...}}``; the metadata
(:class:`CheckpointMetadata`) is enough to rebuild the model and preprocess its inputs, so a
checkpoint path alone is enough to run. Plain state dicts, VainF-style ``{'model_state': ...}``
dicts, ``{'state_dict': ...}`` dicts and ``module.``-prefixed keys (DataParallel) load too when
the caller names the variant. Files are always read with ``torch.load(weights_only=True)``:
a pickle that carries code is refused, never executed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
import pickle
from typing import Any, Mapping
import zipfile

import torch

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.files import atomic_write
from deeplab_ros.core.labels import label_set_for, labels_from_names, LabelSet, \
    upgrade_class_names

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Network input side when nothing else says: the published DeepLab models' export size.
DEFAULT_INPUT_SIZE = 513
_LISTED = 10


class CheckpointError(ConfigurationError):
    """A checkpoint cannot be used; the message names the file and the problem."""


@dataclass
class CheckpointMetadata:
    """Everything needed to rebuild a model and feed it: variant, classes, normalisation."""

    variant: str
    num_classes: int
    output_stride: int = 16
    model_options: dict[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    palette: tuple[tuple[int, int, int], ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = DEFAULT_INPUT_SIZE
    source: str = ''
    #: sha256 of the file the checkpoint was converted from ('' when not converted).
    source_sha256: str = ''
    #: The conversion that made it (pretrained models: converter, its revision and the run
    #: settings); a cached conversion is reused only while this still matches.
    conversion: str = ''
    #: Run settings recommended on CUDA devices (0: as on the CPU).
    cuda_input_size: int = 0
    cuda_output_stride: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-types form stored in the checkpoint (lists, not tuples)."""
        data = asdict(self)
        data['class_names'] = list(self.class_names)
        data['palette'] = [list(color) for color in self.palette]
        data['mean'] = list(self.mean)
        data['std'] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'CheckpointMetadata':
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if 'variant' not in values or 'num_classes' not in values:
            raise CheckpointError('Checkpoint metadata lacks "variant" or "num_classes".')
        values['class_names'] = upgrade_class_names(
            tuple(str(name) for name in values.get('class_names', ())))
        values['palette'] = tuple(tuple(int(c) for c in color)
                                  for color in values.get('palette', ()))
        for key in ('mean', 'std'):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        values['model_options'] = dict(values.get('model_options') or {})
        values['num_classes'] = int(values['num_classes'])
        values['output_stride'] = int(values.get('output_stride', 16))
        values['input_size'] = int(values.get('input_size', DEFAULT_INPUT_SIZE))
        for key in ('cuda_input_size', 'cuda_output_stride'):
            values[key] = int(values.get(key) or 0)
        return cls(**values)

    def label_set(self) -> LabelSet:
        """The class names and palette as a :class:`LabelSet`.

        Unnamed classes: the built-in set with as many classes, else ``class_<i>``.
        """
        if self.class_names:
            return labels_from_names(self.class_names, name=self.variant,
                                     palette=self.palette or None)
        built_in = label_set_for(self.num_classes)
        if built_in is not None:
            return built_in
        return labels_from_names([f'class_{i}' for i in range(self.num_classes)],
                                 name=self.variant)


def save_checkpoint(path: str | Path, model: torch.nn.Module,
                    metadata: CheckpointMetadata) -> Path:
    """Write ``{'model_state', 'metadata'}`` atomically (temporary file, then rename)."""
    path = Path(path)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_write(path) as temporary:
        torch.save({'model_state': state, 'metadata': metadata.to_dict()}, temporary)
    return path


def _load_file(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f'Checkpoint not found: {path}')
    if not path.is_file():
        raise CheckpointError(f'Checkpoint path is not a file: {path}')
    with path.open('rb') as handle:
        magic = handle.read(4)
    if magic[:2] != b'PK' and magic[:1] != b'\x80':
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint (not a torch '
                              'file: neither a zip archive nor a pickle).')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if 'Weights only load failed' in text or 'weights_only' in text:
            raise CheckpointError(
                f'Refused to load {path}: it contains Python objects that are not plain '
                'tensors (a pickle that could run code). Only plain state dicts are loaded, '
                'for safety. Re-save it as a state dict (torch.save(model.state_dict(), f)).'
            ) from error
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint '
                              f'(corrupt or not a torch file): {text[:200]}') from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f'{path} is not a readable PyTorch checkpoint (truncated, '
                              f'corrupt or not a torch file): {str(error)[:200]}') from error


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    keys = list(state)
    if keys and all(key.startswith('module.') for key in keys):
        return {key[len('module.'):]: value for key, value in state.items()}
    return dict(state)


StateDict = dict[str, torch.Tensor]


def read_checkpoint(path: str | Path) -> tuple[StateDict, CheckpointMetadata | None]:
    """Read a checkpoint file: its state dict and its metadata when it carries any."""
    path = Path(path)
    content = _load_file(path)
    metadata = None
    if isinstance(content, Mapping) and any(k in content for k in ('model_state', 'state_dict')):
        state = content.get('model_state', content.get('state_dict'))
        if isinstance(content.get('metadata'), Mapping):
            try:
                metadata = CheckpointMetadata.from_dict(content['metadata'])
            except (CheckpointError, TypeError, ValueError) as error:
                raise CheckpointError(f'{path}: unreadable metadata: {error}') from error
    else:
        state = content
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f'{path} holds no state dict (expected a dict of tensors, '
                              'or a dict with "model_state").')
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f'{path}: state dict entries that are not tensors: '
                              f'{", ".join(map(str, bad[:_LISTED]))}')
    return _strip_prefix(state), metadata


def _listing(keys: list[str]) -> str:
    shown = ', '.join(keys[:_LISTED])
    return shown + (f', … ({len(keys) - _LISTED} more)' if len(keys) > _LISTED else '')


def _classifier_classes(state: Mapping[str, torch.Tensor],
                        model_state: Mapping[str, torch.Tensor]) -> tuple[int, int] | None:
    """(checkpoint classes, model classes) from the last conv whose shapes differ, if any."""
    for key in reversed(list(model_state)):
        if key.endswith('weight') and model_state[key].ndim == 4 and key in state:
            theirs, ours = state[key].shape, model_state[key].shape
            if theirs[1:] == ours[1:] and theirs[0] != ours[0]:
                return int(theirs[0]), int(ours[0])
            return None
    return None


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                           source: str = '') -> None:
    """Load ``state_dict`` into ``model`` strictly; explain missing, extra and misshapen keys."""
    where = f' from {source}' if source else ''
    model_state = model.state_dict()
    missing = [key for key in model_state if key not in state_dict]
    unexpected = [key for key in state_dict if key not in model_state]
    mismatched = [key for key in model_state if key in state_dict
                  and tuple(state_dict[key].shape) != tuple(model_state[key].shape)]
    if not (missing or unexpected or mismatched):
        model.load_state_dict(state_dict, strict=True)
        return
    problems = []
    classes = _classifier_classes(state_dict, model_state)
    if classes:
        problems.append(f'checkpoint has {classes[0]} classes, model expects {classes[1]}')
    if missing and unexpected and len(missing) > len(model_state) // 2:
        problems.append('the key names belong to a different architecture — check the model '
                        'variant')
    if missing:
        problems.append(f'{len(missing)} missing keys: {_listing(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys: {_listing(unexpected)}')
    if mismatched:
        shapes = [f'{key}: checkpoint {tuple(state_dict[key].shape)} vs model '
                  f'{tuple(model_state[key].shape)}' for key in mismatched]
        problems.append(f'{len(mismatched)} shape mismatches: {_listing(shapes)}')
    raise CheckpointError(f'Weights{where} do not fit the model: ' + '; '.join(problems) + '.')


def _guess_variant(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the registered variant whose key names the state dict has, if one matches."""
    from deeplab_ros.core.models import available_models, build_model
    keys = set(state)
    best, best_overlap = None, 0.0
    for name in available_models():
        if 'resnet101' in name:
            continue  # same key prefix family as resnet50; too large to build for a guess
        try:
            with torch.device('meta'):
                candidate = build_model(name, num_classes=21,
                                        output_stride=_default_stride(name))
        except Exception:  # noqa: BLE001 - a guess only; any variant may refuse meta tensors
            continue
        ours = set(candidate.state_dict())
        overlap = len(ours & keys) / max(len(ours | keys), 1)
        if overlap > best_overlap:
            best, best_overlap = name, overlap
    return best if best_overlap > 0.9 else None


def device_defaults(metadata: CheckpointMetadata, device: torch.device
                    ) -> tuple[int, int | None]:
    """Recommended (input size, output stride or None = the checkpoint's) on ``device``."""
    if device.type == 'cuda':
        return (metadata.cuda_input_size or metadata.input_size,
                metadata.cuda_output_stride or None)
    return metadata.input_size, None


def _supported_stride(path: Path, variant: str, output_stride: int) -> int:
    """``output_stride`` if ``variant`` runs at it (the weights do not depend on it)."""
    from deeplab_ros.core.models.registry import model_spec
    strides = model_spec(variant).output_strides
    if output_stride not in strides:
        choices = ' or '.join(str(stride) for stride in strides)
        raise CheckpointError(f'{path}: model variant {variant!r} runs at output stride '
                              f'{choices}, not {output_stride}.')
    return output_stride


def _default_stride(name: str) -> int:
    from deeplab_ros.core.models.registry import model_spec
    strides = model_spec(name).output_strides
    return 16 if 16 in strides else strides[0]


def load_model(path: str | Path, *, variant: str | None = None, num_classes: int | None = None,
               output_stride: int | None = None, map_location: str | torch.device = 'cpu',
               **options: Any) -> tuple[torch.nn.Module, CheckpointMetadata]:
    """Build the right model for a checkpoint and load its weights (eval mode).

    Metadata stored in the file wins; explicit arguments fill its gaps (plain state dicts)
    and must agree with it when both are given, except ``output_stride``: the weights do not
    depend on it, so any stride the variant supports may be chosen at load.
    """
    from deeplab_ros.core.models import build_model
    path = Path(path)
    state, metadata = read_checkpoint(path)
    if metadata is not None:
        for name, given, stored in (('variant', variant, metadata.variant),
                                    ('num_classes', num_classes, metadata.num_classes)):
            if given not in (None, '', 0) and given != stored:
                raise CheckpointError(f'{path} is a {name}={stored!r} checkpoint, but '
                                      f'{name}={given!r} was asked for.')
        if output_stride:
            metadata.output_stride = _supported_stride(path, metadata.variant, output_stride)
        if options:
            metadata.model_options = {**metadata.model_options, **options}
    else:
        if not variant:
            guess = _guess_variant(state)
            hint = f' (its keys look like {guess!r})' if guess else ''
            raise CheckpointError(f'{path} carries no metadata: name the model variant{hint}.')
        classes = num_classes or _infer_classes(state)
        metadata = CheckpointMetadata(
            variant=variant, num_classes=classes,
            output_stride=output_stride or _default_stride(variant),
            model_options=dict(options), source=str(path))
        built_in = label_set_for(classes)
        if built_in is not None:
            metadata.class_names, metadata.palette = built_in.class_names, built_in.palette
    try:
        model = build_model(metadata.variant, num_classes=metadata.num_classes,
                            output_stride=metadata.output_stride, **metadata.model_options)
    except (InvalidSettingError, ValueError, TypeError) as error:
        raise CheckpointError(f'{path}: cannot build the model: {error}') from error
    try:
        load_state_dict_strict(model, state, source=str(path))
    except CheckpointError as error:
        if metadata.source != str(path) or variant is None:
            raise
        guess = _guess_variant(state)
        if guess and guess != metadata.variant:
            raise CheckpointError(f'{error} The checkpoint looks like variant {guess!r}, not '
                                  f'{metadata.variant!r}.') from None
        raise
    model.to(map_location).eval()
    return model, metadata


def _infer_classes(state: Mapping[str, torch.Tensor]) -> int:
    """Number of classes from the last 4-D conv weight of a plain state dict."""
    for key in reversed(list(state)):
        if key.endswith('weight') and state[key].ndim == 4:
            return int(state[key].shape[0])
    return 21
