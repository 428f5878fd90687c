"""Find the package's shipped files (config/*.yaml, *.xml, *.rviz, launch/) wherever it runs.

From a source checkout the checkout's own files are used; otherwise the package's share folder
from the ament index (``ament_index_python``: a colcon install, a ROS distribution, or this
environment's prefix), and last ``<sys.prefix>/share/deeplab_ros`` for a plain pip install
without an ament index.
"""

from __future__ import annotations

import os
from pathlib import Path
import sys

PACKAGE = 'deeplab_ros'
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def ament_prefixes() -> list[Path]:
    """The install prefixes of ``AMENT_PREFIX_PATH`` in order, then this Python's prefix."""
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    unique: list[Path] = []
    for prefix in prefixes:
        if prefix not in unique:
            unique.append(prefix)
    return unique


def share_directories() -> list[Path]:
    """Folders that may hold the package's shipped files, most specific first."""
    folders = [_SOURCE_ROOT]
    try:
        from ament_index_python.packages import get_package_share_directory  # noqa: PLC0415
    except ImportError:
        pass
    else:
        try:
            folders.append(Path(get_package_share_directory(PACKAGE)))
        except (LookupError, OSError, ValueError):  # not indexed; no AMENT_PREFIX_PATH
            pass
    folders.append(Path(sys.prefix) / 'share' / PACKAGE)
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def share_file(*parts: str) -> Path:
    """``<share>/<parts...>`` of the first folder of :func:`share_directories` that has it.

    Raises:
        FileNotFoundError: No folder has it (the message lists where it was looked for).
    """
    candidates = [folder.joinpath(*parts) for folder in share_directories()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'No {"/".join(parts)}: looked for '
                            f'{", ".join(map(str, candidates))}. Install the package '
                            '(make setup, or colcon build) or pass the file explicitly.')


def config_file(name: str) -> Path:
    """``config/<name>`` of a source checkout or of the installed package."""
    return share_file('config', name)
