"""Learning-rate schedules for fine-tuning."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


class PolyLR(LRScheduler):
    """Polynomial decay: ``lr = base_lr * (1 - step / total_steps) ** power``.

    DeepLab's schedule. The rate reaches ``min_lr`` at ``total_steps`` and stays there.
    The closed form makes the schedule depend only on the step count, so a resumed run
    continues on exactly the same curve.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, *,
                 power: float = 0.9, min_lr: float = 1e-6, last_epoch: int = -1) -> None:
        if total_steps < 1:
            raise ValueError(f'PolyLR needs total_steps >= 1, got {total_steps}.')
        self.total_steps = int(total_steps)
        self.power = float(power)
        self.min_lr = float(min_lr)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        """Return the learning rate of every parameter group at the current step."""
        return list(self._closed_form())

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        return list(self._closed_form())

    def _closed_form(self) -> list[float]:
        progress = min(self.last_epoch, self.total_steps) / self.total_steps
        factor = (1.0 - progress) ** self.power
        return [max(base_lr * factor, self.min_lr) for base_lr in self.base_lrs]
