"""Exact labels of every pretrained model on real photos equal the dense reference.

The segmenter (default backend, the network ending at its logits' resolution) labels frames
of several aspect ratios and sizes, from 1x1 to 1080p (4K for the default model); the dense
reference interpolates every class of the same logits at every frame pixel and takes the
arg-max. Labels must be identical except exact ties; the confidence, the top-class probability
of the same interpolated logits at the network input's detail (support.dense_labels.
reference_confidence), within one level.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deeplab_ros.core.inference.exact_upsample import axis_sampling
from deeplab_ros.core.inference.preprocess import placement_for
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.weights.pretrained import available_pretrained, DEFAULT_PRETRAINED
from support.dense_labels import (
    assert_confidence_close, assert_equals_dense_reference, dense_reference, reference_confidence)

PHOTOS = ('kite_and_cold.jpg', 'basketball1.png', 'pets.jpg', 'grace_hopper.bmp')
#: (height, width): a pixel, thin strips both ways, portrait, landscape, 1080p.
SIZES = ((1, 1), (3, 700), (500, 7), (480, 360), (480, 640), (1080, 1920))
UHD = (2160, 3840)


def _frame(shared: Path, photo: str, size: tuple[int, int]) -> np.ndarray:
    image = cv2.imread(str(shared / 'data/photos' / photo))[..., ::-1]
    return np.ascontiguousarray(cv2.resize(image, (size[1], size[0]),
                                           interpolation=cv2.INTER_AREA))


def assert_segmenter_is_exact(segmenter: Segmenter, frame: np.ndarray) -> None:
    """The segmenter's labels, class fractions and confidence of ``frame`` against the dense
    reference."""
    result = segmenter.segment(frame, confidence=True)
    logits = segmenter.forward_only(segmenter.prepare_batch([frame]))[0].clone()
    place = placement_for(frame.shape[0], frame.shape[1], segmenter.input_size)
    rows = axis_sampling(frame.shape[0], place.height, segmenter.input_size, logits.shape[1],
                         segmenter.logits_resize, logits.device)
    columns = axis_sampling(frame.shape[1], place.width, segmenter.input_size,
                            logits.shape[2], segmenter.logits_resize, logits.device)
    assert logits.shape[-1] < segmenter.input_size  # the network ends at its logits' size
    assert_equals_dense_reference(torch.from_numpy(result.labels),
                                  dense_reference(logits, rows, columns, False))
    pixels = np.bincount(result.labels.reshape(-1))
    assert result.class_fractions == {index: count / result.labels.size
                                      for index, count in enumerate(pixels.tolist()) if count}
    assert result.confidence is not None
    assert_confidence_close(torch.from_numpy(result.confidence), reference_confidence(
        logits, frame.shape[:2], (place.height, place.width), segmenter.input_size,
        segmenter.logits_resize))


@pytest.mark.parametrize('name', available_pretrained())
def test_every_pretrained_model_labels_real_photos_exactly(shared: Path, name: str) -> None:
    segmenter = Segmenter.from_checkpoint(f'pretrained:{name}', device='cpu')
    assert segmenter.upsample == 'exact'
    for index, size in enumerate(SIZES):
        assert_segmenter_is_exact(segmenter, _frame(shared, PHOTOS[index % len(PHOTOS)], size))
    segmenter.close()


def test_default_model_labels_a_4k_frame_exactly(shared: Path) -> None:
    segmenter = Segmenter.from_checkpoint(f'pretrained:{DEFAULT_PRETRAINED}', device='cpu')
    assert_segmenter_is_exact(segmenter, _frame(shared, 'kite_and_cold.jpg', UHD))
    segmenter.close()


@pytest.mark.needs_gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (none here)')
@pytest.mark.parametrize('name', available_pretrained())
def test_every_pretrained_model_labels_real_photos_exactly_on_cuda(
        shared: Path, name: str) -> None:  # pragma: no cover
    segmenter = Segmenter.from_checkpoint(f'pretrained:{name}', device='cuda')
    assert segmenter.device.type == 'cuda'
    for index, size in enumerate(SIZES):
        assert_segmenter_is_exact(segmenter, _frame(shared, PHOTOS[index % len(PHOTOS)], size))
    assert_segmenter_is_exact(segmenter, _frame(shared, 'kite_and_cold.jpg', UHD))
    segmenter.close()
