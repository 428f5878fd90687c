"""Find the package's shipped configuration files (config/*.yaml, *.xml, *.rviz)."""

from __future__ import annotations

from pathlib import Path
import sys

_SOURCE_CONFIG = Path(__file__).resolve().parents[2] / 'config'


def config_file(name: str) -> Path:
    """``config/<name>`` of a source checkout when running from one, else the installed copy
    under ``<prefix>/share/deeplab_ros/config``.

    Raises:
        FileNotFoundError: Neither exists.
    """
    candidates = [_SOURCE_CONFIG / name,
                  Path(sys.prefix) / 'share' / 'deeplab_ros' / 'config' / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f'No {name}: looked for {", ".join(map(str, candidates))}. '
                            'Install the package (make setup) or pass the file explicitly.')
