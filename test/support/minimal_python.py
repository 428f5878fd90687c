"""A Python that can import only a few distributions: a machine with nothing else installed.

``python -S`` leaves site-packages off ``sys.path``; ``PYTHONPATH`` then names a folder of links
to the files of the wanted distributions and of what they require, nothing more. OpenCV,
PyYAML, Pillow, torchvision, ONNX, rclpy, ... cannot be imported there, as on a machine where
only those distributions are installed (the standard library stays).
"""

from __future__ import annotations

from importlib import metadata
import os
from pathlib import Path
import re
import sys

from packaging.requirements import Requirement


def _canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def distribution_closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    """The distributions ``names`` and, recursively, what they require (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = _canonical(pending.pop())
        if name in found:
            continue
        distribution = metadata.distribution(name)
        found[name] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({'extra': ''}):
                pending.append(requirement.name)
    return list(found.values())


def site_with_only(folder: Path, names: tuple[str, ...]) -> Path:
    """Fill ``folder`` with links to the top-level files of ``names``' closure; ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for distribution in distribution_closure(names):
        for file in distribution.files or ():
            top = file.parts[0]
            link = folder / top
            if top in ('..', '__pycache__') or os.path.lexists(link):
                continue
            source = Path(str(distribution.locate_file(top)))
            if source.exists():
                link.symlink_to(source)
    return folder


def minimal_python(folder: Path, names: tuple[str, ...] = ('torch', 'numpy'),
                   ) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment of a Python that imports only ``names`` (+ stdlib).

    The environment keeps ``PATH`` and ``HOME`` of this one, and ``PYTHONPATH`` is the link
    folder alone.
    """
    site = site_with_only(folder, names)
    env = {key: os.environ[key] for key in ('PATH', 'HOME') if key in os.environ}
    env['PYTHONPATH'] = str(site)
    return [sys.executable, '-S'], env
