"""Build a tiny PASCAL VOC layout dataset from the shared VOC validation images.

The 21 VOC classes are merged into four (background, vehicle, animal, other); images are
downscaled so training and validation stay cheap on a CPU. Half of the masks are written as
palette PNGs (the VOC convention), the other half as plain index PNGs, so both readers run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
import yaml

from deeplab_ros.core.labels import decode_color_mask, voc_labels

CLASS_NAMES: tuple[str, ...] = ('background', 'vehicle', 'animal', 'other')
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (0, 0, 142), (220, 20, 60), (250, 170, 30))
VEHICLES = ('aeroplane', 'bicycle', 'boat', 'bus', 'car', 'motorbike', 'train')
ANIMALS = ('bird', 'cat', 'cow', 'dog', 'horse', 'sheep')
IGNORE = 255


@dataclass(frozen=True)
class TinyDataset:
    """Where the tiny dataset lives and what it holds."""

    root: Path
    labels_file: Path
    train: tuple[str, ...]
    val: tuple[str, ...]


def voc_to_tiny_lut() -> np.ndarray:
    """A 256-entry table mapping VOC class ids (and 255) to the four tiny classes."""
    names = voc_labels().class_names
    lut = np.full(256, CLASS_NAMES.index('other'), dtype=np.uint8)
    lut[IGNORE] = IGNORE
    for voc_id, name in enumerate(names):
        if name == 'background':
            lut[voc_id] = 0
        elif name in VEHICLES:
            lut[voc_id] = 1
        elif name in ANIMALS:
            lut[voc_id] = 2
    return lut


def write_palette_png(path: Path, ids: np.ndarray,
                      colors: tuple[tuple[int, int, int], ...]) -> None:
    """Save ``ids`` as a palette ('P' mode) PNG whose palette holds ``colors``."""
    image = Image.fromarray(ids, mode='P')
    flat = [channel for color in colors for channel in color]
    flat += [0] * (3 * 256 - len(flat))
    flat[3 * IGNORE:3 * IGNORE + 3] = [224, 224, 192]
    image.putpalette(flat)
    image.save(path)


def build_tiny_voc_dataset(root: Path, source: Path, *, size: int = 161,
                           val_names: tuple[str, ...] = ('8', '120')) -> TinyDataset:
    """Write JPEGImages/, SegmentationClass/, ImageSets/Segmentation/ and ``classes.yaml``.

    Args:
        root: Folder to create the dataset in.
        source: ``shared/data/voc_val`` (``N_image.png`` / ``N_target.png`` pairs).
        size: Side the 513x513 crops are downscaled to.
        val_names: Sample names put in the validation split; the rest form the train split.
    """
    images_dir = root / 'JPEGImages'
    masks_dir = root / 'SegmentationClass'
    lists_dir = root / 'ImageSets' / 'Segmentation'
    for folder in (images_dir, masks_dir, lists_dir):
        folder.mkdir(parents=True, exist_ok=True)
    lut = voc_to_tiny_lut()
    names = sorted(path.name[:-len('_image.png')] for path in source.glob('*_image.png'))
    if not names:
        raise FileNotFoundError(f'No N_image.png files in {source}')
    for number, name in enumerate(names):
        image_bgr = cv2.imread(str(source / f'{name}_image.png'), cv2.IMREAD_COLOR)
        target_rgb = cv2.imread(str(source / f'{name}_target.png'), cv2.IMREAD_COLOR)[..., ::-1]
        ids = lut[decode_color_mask(np.ascontiguousarray(target_rgb), voc_labels())]
        image_bgr = cv2.resize(image_bgr, (size, size), interpolation=cv2.INTER_AREA)
        ids = cv2.resize(ids, (size, size), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(images_dir / f'{name}.jpg'), image_bgr,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        if number % 2 == 0:
            write_palette_png(masks_dir / f'{name}.png', ids, CLASS_COLORS)
        else:
            cv2.imwrite(str(masks_dir / f'{name}.png'), ids)
    val = tuple(name for name in names if name in val_names)
    train = tuple(name for name in names if name not in val_names)
    (lists_dir / 'train.txt').write_text(''.join(f'{name}\n' for name in train))
    (lists_dir / 'val.txt').write_text(''.join(f'{name}\n' for name in val))
    labels_file = root / 'classes.yaml'
    labels_file.write_text(yaml.safe_dump({
        'names': list(CLASS_NAMES), 'colors': [list(color) for color in CLASS_COLORS],
        'ignore_index': IGNORE}, sort_keys=False))
    return TinyDataset(root, labels_file, train, val)
