"""Joint image/label augmentations for training: random scale, crop, flip, normalisation.

Every random decision comes from a ``numpy.random.Generator`` handed in by the caller, so a
sample's augmentation depends only on the seed it was drawn with (see
:func:`sample_generator`), never on worker scheduling or on where a run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.evaluation.datasets import DatasetError
from deeplab_ros.core.weights.checkpoint import IMAGENET_MEAN, IMAGENET_STD


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Return the random generator for one sample of one epoch of a seeded run."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, index]))


def _check_pair(image: np.ndarray, target: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DatasetError(f'Expected an HxWx3 uint8 RGB image, got {image.shape} '
                           f'{image.dtype}.')
    if target.shape != image.shape[:2]:
        raise DatasetError(
            f'Image {image.shape[:2]} and label mask {target.shape} differ in size; the mask '
            'must have one class id per image pixel.')


def random_scale(image: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                 scale_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Resize image (bilinear) and mask (nearest) by a factor drawn from ``scale_range``."""
    low, high = scale_range
    factor = float(rng.uniform(low, high)) if high > low else float(low)
    if abs(factor - 1.0) < 1e-6:
        return image, target
    height, width = target.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    target = cv2.resize(target, size, interpolation=cv2.INTER_NEAREST)
    return image, target


def pad_to(image: np.ndarray, target: np.ndarray, height: int, width: int, *,
           fill: tuple[int, int, int], ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right up to ``height`` x ``width``: image with ``fill``, mask with ignore."""
    pad_h = max(0, height - target.shape[0])
    pad_w = max(0, width - target.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image, target
    image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=fill)
    target = cv2.copyMakeBorder(target, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                value=ignore_index)
    return image, target


def random_crop(image: np.ndarray, target: np.ndarray, rng: np.random.Generator, size: int, *,
                fill: tuple[int, int, int], ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a ``size`` x ``size`` window at a random place, padding first when too small."""
    image, target = pad_to(image, target, size, size, fill=fill, ignore_index=ignore_index)
    height, width = target.shape
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return (image[top:top + size, left:left + size],
            target[top:top + size, left:left + size])


def random_flip(image: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                probability: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Mirror image and mask left-right with ``probability``."""
    if rng.random() < probability:
        return image[:, ::-1], target[:, ::-1]
    return image, target


def to_tensors(image: np.ndarray, target: np.ndarray, mean: tuple[float, float, float],
               std: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a normalised float ``[3, H, W]`` image and an int64 ``[H, W]`` mask."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return (pixels - mean_t) / std_t, torch.from_numpy(np.ascontiguousarray(target)).long()


@dataclass(frozen=True)
class TrainTransform:
    """The training augmentation: random scale, pad + random crop, flip, normalise.

    Attributes:
        crop_size: Side of the square training crop.
        scale_range: Range of the random resize factor (``(1.0, 1.0)`` disables it).
        flip_probability: Chance of a horizontal flip.
        mean: Per-channel mean for RGB scaled to [0, 1].
        std: Per-channel standard deviation for RGB scaled to [0, 1].
        ignore_index: Mask value for padding and pixels excluded from the loss.
    """

    crop_size: int = 513
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip_probability: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.crop_size < 8:
            raise InvalidSettingError(
                f'crop_size must be at least 8 pixels, got {self.crop_size}.',
                setting='crop_size')
        low, high = self.scale_range
        if not 0 < low <= high:
            raise InvalidSettingError(
                f'scale_range must satisfy 0 < low <= high, got {self.scale_range}.',
                setting='scale_range')

    def fill_color(self) -> tuple[int, int, int]:
        """The padding colour: the dataset mean, which normalises to zero."""
        return tuple(int(round(value * 255)) for value in self.mean)  # type: ignore[return-value]

    def __call__(self, image: np.ndarray, target: np.ndarray,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one image/mask pair with the random decisions drawn from ``rng``."""
        _check_pair(image, target)
        image, target = random_scale(image, target, rng, self.scale_range)
        image, target = random_crop(image, target, rng, self.crop_size,
                                    fill=self.fill_color(), ignore_index=self.ignore_index)
        image, target = random_flip(image, target, rng, self.flip_probability)
        return to_tensors(image, target, self.mean, self.std)
