"""Build the GPU check's bundle: one folder with all the check needs besides torch and numpy.

    python -m deeplab_ros.tools.gpu_check_bundle --output gpu_check_bundle   # what make runs

Built where the package, its pretrained models and the shared assets are (this repository's
``.venv``); copied to a CUDA machine and run there with ``python3 <folder>/run.py``
(:mod:`deeplab_ros.tools.gpu_check`). The folder holds:

- ``run.py``: the check;
- ``deeplab_ros/``: the package's ROS-free core as installed here (``deeplab_ros/__init__.py``
  and ``deeplab_ros/core``), which the segmenter runs from with torch and numpy alone;
- ``checkpoints/NAME.pt.gz``: the converted checkpoint of every pretrained model,
  gzip-compressed (weights dequantized from 8 bits take few distinct values and compress
  well);
- ``photos/NAME.npy``: a few shared photos and video frames as HxWx3 uint8 RGB arrays, so no
  image decoder is needed;
- ``references/NAME.npz``: every photo's labels by float32 torch on the CPU here, with the
  settings recorded in the manifest;
- ``manifest.json`` and ``README.txt``.

The build fails, leaving nothing behind, when the folder would exceed :data:`MAX_BYTES`.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
from typing import Sequence

import numpy as np
import torch

import deeplab_ros
from deeplab_ros.bagtools.sources import open_frame_source
from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.evaluation.datasets import read_rgb
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.weights.locations import shared_path, source_checkouts
from deeplab_ros.core.weights.pretrained import (
    available_pretrained, DEFAULT_PRETRAINED, pretrained_checkpoint)
from deeplab_ros.tools import gpu_check
from deeplab_ros.tools.failures import report_failure, TOOL_FAILURES

#: The most the bundle may hold (60 MB): it is copied whole to the CUDA machine, so it must
#: fit in a small transfer.
MAX_BYTES = 60_000_000

#: Photos and frames of the shared assets: name -> (path under shared/, frame of a video).
#: Animals (VOC), a room (ADE20K), a road with cars and people walking (Cityscapes), each of
#: another size; four, the batch the check segments at once.
PHOTOS: dict[str, tuple[str, int]] = {
    'pets': ('data/photos/pets.jpg', 0),
    'indoor': ('data/rgbd/color/1.png', 0),
    'street': ('data/video/traffic_frames.mp4', 0),
    'pedestrians': ('data/video/vtest.avi', 0),
}

README = """\
GPU check of deeplab_ros ({built}, {commit})

Needs Python 3.10-3.12 with torch (a CUDA build for the GPU check) and numpy; nothing else
(no ROS, no OpenCV, no network). From any folder:

    python3 {folder}/run.py [--device cuda|cpu] [--out result.json]

--device cuda (the default when CUDA is available) checks float16 on CUDA against float32 on
the CPU (identical labels on at least 99.5 % of the pixels of every photo, for every
pretrained model) and times the segmenter at VGA and 1080p with batches of 1 and 4, with
torch and, when installed, ONNX Runtime. --device cpu runs the same script on the CPU.
Writes result.json and result.md (the table, also printed); exits 1 when a check fails.
`python3 {folder}/run.py --help` lists the options.

Contents: run.py (the check), deeplab_ros/ (the package's ROS-free core), checkpoints/
(converted pretrained models, gzip), photos/ (RGB uint8 .npy), references/ (each photo's
float32 CPU labels from the build), manifest.json.
"""


def photo(name: str) -> np.ndarray:
    """The shared photo or video frame ``name`` of :data:`PHOTOS` as HxWx3 uint8 RGB."""
    relative, frame = PHOTOS[name]
    path = shared_path(relative)
    if path.suffix.lower() in ('.mp4', '.avi'):
        return next(open_frame_source(path).frames(first=frame, max_frames=1))
    return read_rgb(path)


def folder_bytes(folder: Path) -> int:
    """Total size of the files under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob('*') if path.is_file())


def check_size(folder: Path, max_bytes: int = MAX_BYTES) -> int:
    """The size of ``folder``; raises ``ConfigurationError`` when it exceeds ``max_bytes``."""
    size = folder_bytes(folder)
    if size > max_bytes:
        largest = sorted(folder.rglob('*'), key=lambda path: path.stat().st_size)[-3:]
        raise ConfigurationError(
            f'the bundle would hold {size / 1e6:.1f} MB, more than {max_bytes / 1e6:.1f} MB '
            f'(largest: {", ".join(str(path.relative_to(folder)) for path in largest)})',
            setting='output')
    return size


def _copy_package(target: Path) -> None:
    package = Path(deeplab_ros.__file__).resolve().parent
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    (target / 'deeplab_ros').mkdir()
    shutil.copy2(package / '__init__.py', target / 'deeplab_ros' / '__init__.py')
    shutil.copytree(package / 'core', target / 'deeplab_ros' / 'core', ignore=ignore)
    shutil.copy2(Path(gpu_check.__file__), target / 'run.py')


def _compress(source: Path, target: Path) -> str:
    """Compress ``source`` into ``target`` (gzip); the sha256 of ``source``."""
    digest = hashlib.sha256()
    with source.open('rb') as reader, gzip.open(target, 'wb', compresslevel=6) as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def _commit() -> str:
    for checkout in source_checkouts():
        completed = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=checkout,
                                   capture_output=True, text=True, check=False)
        if completed.returncode == 0:
            return completed.stdout.strip()
    return 'unknown'


def _add_model(target: Path, name: str, photos: dict[str, np.ndarray]) -> dict[str, object]:
    """Compress ``name``'s checkpoint into the bundle and store its reference labels."""
    path = pretrained_checkpoint(name)
    checkpoint = f'checkpoints/{name}.pt.gz'
    digest = _compress(path, target / checkpoint)
    segmenter = Segmenter.from_checkpoint(path, device='cpu', backend='torch')
    try:
        labels = {photo_name: segmenter.segment(image).labels
                  for photo_name, image in photos.items()}
        references = f'references/{name}.npz'
        np.savez_compressed(target / references, **labels)
        return {'name': name, 'checkpoint': checkpoint, 'sha256': digest,
                'input_size': segmenter.input_size,
                'output_stride': segmenter.metadata.output_stride,
                'references': references}
    finally:
        segmenter.close()


def build_bundle(output: Path, *, max_bytes: int = MAX_BYTES) -> int:
    """Build the bundle into ``output`` (replacing an earlier bundle there); its size.

    Raises:
        ConfigurationError: ``output`` is something else than a bundle, a model or photo is
            missing, or the bundle would exceed ``max_bytes``.
    """
    output = output.resolve()
    if output.exists() and not (output / gpu_check.MANIFEST).is_file() \
            and any(output.iterdir()):
        raise ConfigurationError(f'{output} exists and is not a GPU check bundle; choose '
                                 'another folder', setting='output')
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f'.{output.name}.', dir=output.parent) as work:
        target = Path(work)
        for folder in ('checkpoints', 'photos', 'references'):
            (target / folder).mkdir()
        _copy_package(target)
        photos = {name: photo(name) for name in PHOTOS}
        for name, image in photos.items():
            np.save(target / 'photos' / f'{name}.npy', np.ascontiguousarray(image))
        manifest = {
            'format': gpu_check.BUNDLE_FORMAT,
            'built': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'commit': _commit(), 'version': deeplab_ros.__version__,
            'torch': torch.__version__, 'default_model': DEFAULT_PRETRAINED,
            'photos': [{'name': name, 'file': f'photos/{name}.npy', 'source': PHOTOS[name][0],
                        'shape': list(image.shape)} for name, image in photos.items()],
            'models': [_add_model(target, name, photos) for name in available_pretrained()]}
        (target / gpu_check.MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n')
        (target / 'README.txt').write_text(README.format(
            built=manifest['built'], commit=manifest['commit'], folder=output.name))
        size = check_size(target, max_bytes)
        if output.exists():
            shutil.rmtree(output)
        target.rename(output)
        target.mkdir()  # the temporary directory's cleanup expects it
    return size


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the bundle and print where it is and its size."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', type=Path, default=Path('gpu_check_bundle'),
                        help='the bundle folder (replaced when it holds an earlier bundle)')
    args = parser.parse_args(argv)
    try:
        size = build_bundle(args.output)
    except TOOL_FAILURES as error:
        return report_failure(parser.prog, error, parser)
    print(f'{args.output}: {size / 1e6:.1f} MB; run it with '
          f'python3 {args.output}/run.py [--device cuda|cpu] [--out result.json]')
    return 0


if __name__ == '__main__':
    sys.exit(main())
