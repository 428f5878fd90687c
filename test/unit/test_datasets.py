"""Labelled folders: the shared flat VOC images and VOC-layout trees with palette/index PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
import pytest

from deeplab_ros.core.evaluation.datasets import (
    DatasetError, iter_flat_folder, open_dataset, read_target, VocLayoutDataset)
from deeplab_ros.core.labels import voc_labels

VOC = voc_labels()


def _palette_png(path: Path, ids: np.ndarray) -> None:
    """Save class ids as a palette PNG with the VOC colours (255 -> VOC's off-white)."""
    image = Image.fromarray(ids, mode='P')
    flat = [0] * (256 * 3)
    for index, colour in enumerate(VOC.palette):
        flat[3 * index:3 * index + 3] = colour
    flat[3 * 255:] = [224, 224, 192]
    image.putpalette(flat)
    image.save(path)


def _voc_tree(root: Path, masks: dict[str, np.ndarray], *, palette: bool) -> None:
    (root / 'JPEGImages').mkdir(parents=True)
    (root / 'SegmentationClass').mkdir()
    (root / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    for name, ids in masks.items():
        image = np.zeros((*ids.shape, 3), np.uint8)
        image[..., 1] = ids * 10
        cv2.imwrite(str(root / 'JPEGImages' / f'{name}.jpg'), image)
        if palette:
            _palette_png(root / 'SegmentationClass' / f'{name}.png', ids)
        else:
            cv2.imwrite(str(root / 'SegmentationClass' / f'{name}.png'), ids)
    (root / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('\n'.join(masks) + '\n')


def _masks() -> dict[str, np.ndarray]:
    first = np.zeros((12, 20), np.uint8)
    first[2:8, 3:9] = 15          # person
    first[2:8, 9] = 255           # ignore border
    second = np.full((9, 7), 12, np.uint8)  # dog
    second[0] = 0
    return {'2007_000001': first, '2007_000002': second}


def test_shared_voc_images_read_as_rgb_and_class_ids(shared: Path) -> None:
    samples = list(iter_flat_folder(shared / 'data/voc_val', VOC))
    assert len(samples) == 10
    for sample in samples:
        assert sample.image_rgb.shape == (513, 513, 3) and sample.image_rgb.dtype == np.uint8
        assert sample.target.shape == (513, 513) and sample.target.dtype == np.uint8
        assert set(np.unique(sample.target)) <= set(range(21)) | {255}
    first = samples[0]
    bgr = cv2.imread(str(shared / f'data/voc_val/{first.name}_image.png'))
    assert np.array_equal(first.image_rgb, bgr[..., ::-1])
    classes = set().union(*(np.unique(sample.target).tolist() for sample in samples))
    expected = {'background', 'aeroplane', 'bicycle', 'bird', 'bottle', 'cow', 'horse', 'sheep'}
    assert classes == {VOC.class_names.index(name) for name in expected} | {255}


@pytest.mark.parametrize('palette', [True, False], ids=['palette-png', 'index-png'])
def test_voc_layout_targets_decode_exactly(tmp_path: Path, palette: bool) -> None:
    masks = _masks()
    _voc_tree(tmp_path, masks, palette=palette)
    dataset = open_dataset(tmp_path, VOC, split='val')
    assert isinstance(dataset, VocLayoutDataset) and len(dataset) == 2
    for sample, (name, ids) in zip(dataset, masks.items()):
        assert sample.name == name
        assert np.array_equal(sample.target, ids)
        assert sample.image_rgb.shape == (*ids.shape, 3)


def test_palette_and_colour_masks_agree(tmp_path: Path) -> None:
    ids = _masks()['2007_000001']
    _palette_png(tmp_path / 'palette.png', ids)
    rgb = VOC.palette_lut()[ids].copy()
    rgb[ids == 255] = (224, 224, 192)
    cv2.imwrite(str(tmp_path / 'colour.png'), rgb[..., ::-1])
    # OpenCV expands palette PNGs to colours, so the indices are read through Pillow.
    assert cv2.imread(str(tmp_path / 'palette.png'), cv2.IMREAD_UNCHANGED).ndim == 3
    assert np.array_equal(read_target(tmp_path / 'palette.png', VOC), ids)
    assert np.array_equal(read_target(tmp_path / 'colour.png', VOC), ids)


def test_layout_problems_are_explained(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match='not found'):
        open_dataset(tmp_path / 'missing', VOC)
    with pytest.raises(DatasetError, match='no \\*_image.png'):
        open_dataset(tmp_path, VOC)
    _voc_tree(tmp_path / 'voc', _masks(), palette=False)
    with pytest.raises(DatasetError, match='split file not found.*train.txt'):
        open_dataset(tmp_path / 'voc', VOC, split='train')
    (tmp_path / 'voc' / 'SegmentationClass' / '2007_000002.png').unlink()
    dataset = open_dataset(tmp_path / 'voc', VOC)
    with pytest.raises(DatasetError, match='no mask for .2007_000002'):
        list(dataset)
    flat = tmp_path / 'flat'
    flat.mkdir()
    cv2.imwrite(str(flat / '3_image.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match='3_target.png'):
        list(iter_flat_folder(flat, VOC))
