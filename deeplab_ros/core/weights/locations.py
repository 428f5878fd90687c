"""Locate the shared assets (pretrained weights, images, videos), user weights and the cache.

The shared folder is ``DEEPLAB_ROS_SHARED`` when set; otherwise ``shared/`` beside a source
checkout of this package: the checkout this module is imported from (the repository venv, an
editable install) or one found from the working directory upwards (a colcon workspace's
``src/deeplab_ros``), so installed copies find it too. Users keep model files in the folders of
``DEEPLAB_ROS_WEIGHTS_PATH`` (``os.pathsep``-separated, default
``$XDG_DATA_HOME/deeplab_ros/weights`` = ``~/.local/share/deeplab_ros/weights``). Converted
checkpoints are cached in ``DEEPLAB_ROS_CACHE`` (default ``$XDG_CACHE_HOME/deeplab_ros`` or
``~/.cache/deeplab_ros``), never inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from deeplab_ros.core.errors import ConfigurationError

SHARED_ENV = 'DEEPLAB_ROS_SHARED'
CACHE_ENV = 'DEEPLAB_ROS_CACHE'
WEIGHTS_PATH_ENV = 'DEEPLAB_ROS_WEIGHTS_PATH'
PACKAGE = 'deeplab_ros'

_MODULE_ROOT = Path(__file__).resolve().parents[3]


class MissingAssetError(ConfigurationError):
    """A shared asset (weights, image, video) is not where it is looked for."""


def _is_source_checkout(folder: Path) -> bool:
    package_xml = folder / 'package.xml'
    return (folder / PACKAGE).is_dir() and package_xml.is_file() \
        and f'<name>{PACKAGE}</name>' in package_xml.read_text(errors='replace')


def source_checkouts() -> list[Path]:
    """Return the source checkouts of this package.

    The one imported from comes first, then any found from the working directory upwards
    (directly or as ``src/deeplab_ros`` of a workspace).
    """
    found: list[Path] = []
    cwd = Path.cwd().resolve()
    for folder in (_MODULE_ROOT, cwd, *cwd.parents):
        for candidate in (folder, folder / 'src' / PACKAGE):
            if candidate not in found and _is_source_checkout(candidate):
                found.append(candidate)
    return found


def shared_dir() -> Path:
    """Return the shared assets folder.

    ``$DEEPLAB_ROS_SHARED`` when set, else the first ``<checkout>/../shared`` that exists
    (see :func:`source_checkouts`), else ``<module root>/../shared`` (named in messages).
    """
    value = os.environ.get(SHARED_ENV)
    if value:
        return Path(value).expanduser().resolve()
    for checkout in source_checkouts():
        candidate = (checkout.parent / 'shared').resolve()
        if candidate.is_dir():
            return candidate
    return (_MODULE_ROOT.parent / 'shared').resolve()


def user_weights_dirs() -> list[Path]:
    """Return the folders where users keep model files.

    They are the entries of ``$DEEPLAB_ROS_WEIGHTS_PATH`` when it is set, else
    ``$XDG_DATA_HOME/deeplab_ros/weights``.
    """
    value = os.environ.get(WEIGHTS_PATH_ENV)
    if value:
        return [Path(part).expanduser() for part in value.split(os.pathsep) if part]
    xdg = os.environ.get('XDG_DATA_HOME')
    return [(Path(xdg) if xdg else Path.home() / '.local' / 'share') / PACKAGE / 'weights']


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
