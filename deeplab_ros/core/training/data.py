"""Training and validation datasets on top of :mod:`deeplab_ros.core.evaluation.datasets` samples.

Sampling is deterministic by construction: :class:`EpochBatchSampler` shuffles each epoch with
a generator seeded from ``(seed, epoch)`` and hands out ``(epoch, index)`` keys, and
:class:`AugmentedDataset` seeds every sample's augmentation from ``(seed, epoch, index)``. A
run therefore sees the same batches whatever the number of workers, and a resumed run can skip
straight to the batch it stopped at.
"""

from __future__ import annotations

from collections.abc import Iterator
import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from deeplab_ros.core.evaluation.datasets import LabelledImageSource
from deeplab_ros.core.training.transforms import sample_generator, TrainTransform


class AugmentedDataset(Dataset):
    """Applies :class:`TrainTransform` to samples, keyed by ``(epoch, index)``."""

    def __init__(self, samples: LabelledImageSource, transform: TrainTransform,
                 seed: int) -> None:
        self.samples = samples
        self.transform = transform
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        sample = self.samples[index]
        return self.transform(sample.image_rgb, sample.target,
                              sample_generator(self.seed, epoch, index))


def epoch_permutation(size: int, seed: int, epoch: int) -> list[int]:
    """Return the shuffled sample order of one epoch of a seeded run."""
    generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    return torch.randperm(size, generator=generator).tolist()


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields the batches of one epoch, optionally starting after ``skip_batches``.

    Incomplete last batches are dropped (batch norm needs more than one sample).
    """

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int,
                 skip_batches: int = 0) -> None:
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.skip_batches = skip_batches

    def __len__(self) -> int:
        return max(0, self.size // self.batch_size - self.skip_batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_permutation(self.size, self.seed, self.epoch)
        for number in range(self.skip_batches, self.size // self.batch_size):
            chunk = order[number * self.batch_size:(number + 1) * self.batch_size]
            yield [(self.epoch, index) for index in chunk]


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random from torch's worker seed (a DataLoader ``worker_init_fn``)."""
    del worker_id
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def make_train_loader(dataset: AugmentedDataset, *, batch_size: int, epoch: int,
                      skip_batches: int = 0, workers: int = 0,
                      pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """Return the DataLoader for one training epoch (seeded sampler, seeded workers)."""
    sampler = EpochBatchSampler(len(dataset), batch_size, dataset.seed, epoch, skip_batches)
    generator = torch.Generator().manual_seed(dataset.seed * 7919 + epoch)
    options: dict[str, Any] = {}
    if workers > 0:
        options['persistent_workers'] = False
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
        worker_init_fn=seed_worker, generator=generator, **options)
