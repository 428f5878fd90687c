"""Settings of a fine-tuning run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deeplab_ros.core.errors import InvalidSettingError


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run; saved with every training state.

    Attributes:
        dataset: Root of a PASCAL VOC layout dataset.
        output_dir: Where training states and exported checkpoints are written.
        labels: a name of :data:`deeplab_ros.core.labels.LABEL_SETS` or a YAML label file.
        variant: A registered model name (``deeplab_ros.core.models.available_models()``).
        output_stride: Backbone output stride (8 or 16).
        model_options: Extra keyword options for the model builder.
        init: ``'backbone'`` (pretrained MobileNetV2), ``'checkpoint:PATH'`` or ``'none'``.
        epochs: Passes over the training split; the poly schedule spans all of them.
        max_steps: Cap on the schedule length in optimiser steps (0 = ``epochs`` worth).
        stop_after: Stop (saving a resumable state) after this many steps (0 = run to the end).
        batch_size: Images per optimiser step (at least 2: batch norm).
        crop_size: Side of the square random training crop.
        scale_range: Random resize factor range.
        flip_probability: Chance of a horizontal flip.
        lr: Base learning rate of the head; the backbone gets ``lr * backbone_lr_factor``.
        backbone_lr_factor: Learning-rate factor of parameters under ``backbone.``.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        poly_power: Exponent of the polynomial decay.
        device: ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        amp: Mixed precision (autocast + gradient scaling) when the device is CUDA.
        workers: DataLoader worker processes.
        seed: Seed of every random choice; ``None`` picks one and records it.
        deterministic: Ask PyTorch for deterministic algorithms.
        train_split: Name of the training list under ``ImageSets/Segmentation``.
        val_split: Name of the validation list (empty = no validation).
        val_size: Network input side for validation (0 = the exported checkpoint's
            ``input_size``, as the node runs it).
        val_every: Validate every this many epochs (0 = only at the end).
        save_every: Also save a resumable state every this many steps (0 = per epoch only).
        input_size: Recommended inference input side written to the checkpoint (0 = 513).
        progress: Show a progress bar on stderr.
    """

    dataset: str
    output_dir: str
    labels: str = 'voc'
    variant: str = 'deeplabv3plus_mobilenetv2'
    output_stride: int = 16
    model_options: dict[str, Any] = field(default_factory=dict)
    init: str = 'backbone'
    epochs: int = 30
    max_steps: int = 0
    stop_after: int = 0
    batch_size: int = 8
    crop_size: int = 513
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip_probability: float = 0.5
    lr: float = 0.01
    backbone_lr_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    device: str = 'auto'
    amp: bool = True
    workers: int = 2
    seed: int | None = None
    deterministic: bool = True
    train_split: str = 'train'
    val_split: str = 'val'
    val_size: int = 0
    val_every: int = 1
    save_every: int = 0
    input_size: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.scale_range = (float(self.scale_range[0]), float(self.scale_range[1]))
        if self.batch_size < 2:
            raise InvalidSettingError(
                f'batch_size must be at least 2 (batch norm statistics need more than one '
                f'image per step), got {self.batch_size}.', setting='batch_size')
        if self.epochs < 1:
            raise InvalidSettingError(f'epochs must be at least 1, got {self.epochs}.',
                                      setting='epochs')
        for name in ('max_steps', 'stop_after', 'workers', 'val_size', 'val_every',
                     'save_every', 'input_size'):
            if getattr(self, name) < 0:
                raise InvalidSettingError(
                    f'{name} must not be negative, got {getattr(self, name)}.', setting=name)
        if self.lr <= 0:
            raise InvalidSettingError(f'lr must be positive, got {self.lr}.', setting='lr')

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (stored in training states)."""
        values = asdict(self)
        values['scale_range'] = list(self.scale_range)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> 'TrainConfig':
        """Rebuild a config from :meth:`to_dict` output, ignoring unknown keys."""
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
