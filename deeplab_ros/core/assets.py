"""Locate the shared assets (pretrained weights, images, videos) and the local cache.

The shared folder is found through one setting, the ``DEEPLAB_ROS_SHARED`` environment
variable, which defaults to ``../shared`` beside the repository root. Converted checkpoints
are cached in ``DEEPLAB_ROS_CACHE`` (default ``$XDG_CACHE_HOME/deeplab_ros`` or
``~/.cache/deeplab_ros``), never inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = 'DEEPLAB_ROS_SHARED'
CACHE_ENV = 'DEEPLAB_ROS_CACHE'

_REPO_ROOT = Path(__file__).resolve().parents[2]

GOOGLE_RELEASES_HINT = (
    'The TFLite models are Google\'s public DeepLab releases (Apache-2.0): '
    'deeplabv3_257_mv_gpu.tflite from the TensorFlow Lite segmentation example, and the '
    'quantized mobilenetv2_coco_voc_trainaug / dm05 exports from the TensorFlow DeepLab model '
    'zoo (research/deeplab/g3doc/model_zoo.md). Put them in <shared>/weights/ or set '
    f'{SHARED_ENV} to the folder that holds weights/ and data/.'
)


class MissingAssetError(FileNotFoundError):
    """A shared asset (weights, image, video) is not where it is looked for."""


def shared_dir() -> Path:
    """Return the shared assets folder (``$DEEPLAB_ROS_SHARED`` or ``<repo>/../shared``)."""
    value = os.environ.get(SHARED_ENV)
    if value:
        return Path(value).expanduser().resolve()
    return (_REPO_ROOT.parent / 'shared').resolve()


def shared_path(relative: str, *, hint: str = '') -> Path:
    """Return ``shared_dir() / relative``, raising :class:`MissingAssetError` if it is absent.

    Args:
        relative: Path inside the shared folder, e.g. ``'weights/deeplabv3_257_mv_gpu.tflite'``.
        hint: Extra advice appended to the error message (how to obtain the file).
    """
    base = shared_dir()
    path = base / relative
    if not path.exists():
        state = 'set' if os.environ.get(SHARED_ENV) else 'unset'
        how = f' (set {SHARED_ENV} to override; currently {state})'
        message = f'Missing shared asset {relative!r}: looked for {path}{how}.'
        if hint:
            message += ' ' + hint
        raise MissingAssetError(message)
    return path


def cache_dir() -> Path:
    """Return (and create) the cache folder for converted checkpoints."""
    value = os.environ.get(CACHE_ENV)
    if value:
        path = Path(value).expanduser()
    else:
        xdg = os.environ.get('XDG_CACHE_HOME')
        path = (Path(xdg) if xdg else Path.home() / '.cache') / 'deeplab_ros'
    path.mkdir(parents=True, exist_ok=True)
    return path
