"""Readers for labelled image folders in the flat, VOC and ADE20K layouts.

Flat layout: ``N_image.png``/``N_target.png`` pairs in one folder.

VOC layout::

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png      # palette PNG (VOC colours) or index PNG (class ids)
    root/ImageSets/Segmentation/<split>.txt

ADE20K style (SceneParsing): ``root/NAME.jpg`` + ``root/NAME.png``, or ``root/images/NAME.*``
+ ``root/annotations/NAME.png``; the PNG holds class ids and 0 means "ignore".

Targets come back as HxW uint8 class ids with ``labels.ignore_index`` for ignored pixels.

:class:`LabelledImage` is what scoring and training need of a sample (:class:`SegmentationSample`
is one) and :class:`LabelledImageSource` what training needs of a set of them (a list, a
:class:`VocLayoutDataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import cv2
import numpy as np

from deeplab_ros.core.errors import ConfigurationError
from deeplab_ros.core.files import IMAGE_SUFFIXES
from deeplab_ros.core.labels import decode_color_mask, LabelSet


class DatasetError(ConfigurationError):
    """A dataset folder is missing or not laid out as expected."""


class LabelledImage(Protocol):
    """One labelled image: its name, HxWx3 uint8 RGB pixels and HxW uint8 class ids."""

    name: str
    image_rgb: np.ndarray
    target: np.ndarray


class LabelledImageSource(Protocol):
    """Labelled images by index, with a length and in order."""

    def __len__(self) -> int:
        """The number of images."""

    def __getitem__(self, index: int) -> LabelledImage:
        """Image ``index``."""

    def __iter__(self) -> Iterator[LabelledImage]:
        """The images in order."""


@dataclass
class SegmentationSample:
    """One image with its ground truth."""

    name: str
    image_rgb: np.ndarray
    target: np.ndarray


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot read image {path}')
    return np.ascontiguousarray(image[..., ::-1])


def read_target(path: Path, labels: LabelSet) -> np.ndarray:
    """Read a mask: index PNG (single channel / palette indices) or colour PNG."""
    try:
        from PIL import Image  # palette PNGs keep their indices only through PIL
        with Image.open(path) as image:
            if image.mode == 'P':
                return np.asarray(image, dtype=np.uint8).copy()
            if image.mode in ('L', 'I', 'I;16'):
                return np.asarray(image).astype(np.uint8)
            rgb = np.asarray(image.convert('RGB'), dtype=np.uint8)
            return decode_color_mask(np.ascontiguousarray(rgb), labels)
    except ImportError:
        pass
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f'cannot read mask {path}')
    if mask.ndim == 2:
        return mask.astype(np.uint8)
    return decode_color_mask(np.ascontiguousarray(mask[..., 2::-1]), labels)


def iter_flat_folder(path: str | Path, labels: LabelSet) -> Iterator[SegmentationSample]:
    """Samples of a folder of ``N_image.png`` + ``N_target.png`` pairs, in name order."""
    root = Path(path)
    images = sorted(root.glob('*_image.png'), key=lambda p: (len(p.name), p.name))
    if not images:
        raise DatasetError(f'no *_image.png files in {root}')
    for image_path in images:
        name = image_path.name[:-len('_image.png')]
        target_path = root / f'{name}_target.png'
        if not target_path.is_file():
            raise DatasetError(f'{image_path} has no mask {target_path.name}')
        yield SegmentationSample(name, read_rgb(image_path), read_target(target_path, labels))


def iter_pair_folder(path: str | Path, labels: LabelSet) -> Iterator[SegmentationSample]:
    """Samples of ADE20K-style pairs (see the module docstring), in name order.

    Mask id 0 becomes ``labels.ignore_index``; other ids are the model's class ids.
    """
    root = Path(path)
    if (root / 'images').is_dir() and (root / 'annotations').is_dir():
        image_dir, mask_dir = root / 'images', root / 'annotations'
        suffixes: tuple[str, ...] = IMAGE_SUFFIXES
    else:
        image_dir = mask_dir = root
        suffixes = tuple(suffix for suffix in IMAGE_SUFFIXES if suffix != '.png')
    images = sorted(item for item in image_dir.iterdir() if item.suffix.lower() in suffixes)
    if not images:
        raise DatasetError(f'no *_image.png files, no NAME.jpg + NAME.png pairs and no '
                           f'images/ + annotations/ folders in {root}')
    for image_path in images:
        mask_path = mask_dir / f'{image_path.stem}.png'
        if not mask_path.is_file():
            raise DatasetError(f'{image_path} has no annotation {mask_path}')
        target = read_target(mask_path, labels)
        target = np.where(target == 0, labels.ignore_index, target).astype(np.uint8)
        yield SegmentationSample(image_path.stem, read_rgb(image_path), target)


class VocLayoutDataset:
    """A PASCAL VOC-layout dataset split: indexable, iterable, with a length."""

    def __init__(self, root: str | Path, split: str, labels: LabelSet) -> None:
        self.root = Path(root)
        self.labels = labels
        split_file = self.root / 'ImageSets' / 'Segmentation' / f'{split}.txt'
        if not split_file.is_file():
            raise DatasetError(f'split file not found: {split_file}')
        self.ids = [line.strip() for line in split_file.read_text().splitlines()
                    if line.strip()]
        if not self.ids:
            raise DatasetError(f'{split_file} lists no images')

    def __len__(self) -> int:
        return len(self.ids)

    def _image_path(self, name: str) -> Path:
        for suffix in ('.jpg', '.jpeg', '.png'):
            path = self.root / 'JPEGImages' / f'{name}{suffix}'
            if path.is_file():
                return path
        raise DatasetError(f'no image for {name!r} in {self.root / "JPEGImages"}')

    def __getitem__(self, index: int) -> SegmentationSample:
        name = self.ids[index]
        target_path = self.root / 'SegmentationClass' / f'{name}.png'
        if not target_path.is_file():
            raise DatasetError(f'no mask for {name!r}: {target_path}')
        return SegmentationSample(name, read_rgb(self._image_path(name)),
                                  read_target(target_path, self.labels))

    def __iter__(self) -> Iterator[SegmentationSample]:
        for index in range(len(self)):
            yield self[index]


def open_dataset(path: str | Path, labels: LabelSet, split: str = 'val'
                 ) -> VocLayoutDataset | list[SegmentationSample]:
    """Open the labelled dataset at ``path`` with the reader of its layout.

    VOC layout when ``path`` has ImageSets/, the flat ``N_image.png`` layout when it has such
    files, else ADE20K-style image/annotation pairs.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f'dataset folder not found: {root}')
    if (root / 'ImageSets').is_dir():
        return VocLayoutDataset(root, split, labels)
    if any(root.glob('*_image.png')):
        return list(iter_flat_folder(root, labels))
    return list(iter_pair_folder(root, labels))
