"""The fine-tuning loop: data, model initialisation, optimisation, validation, checkpoints."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
import math
from pathlib import Path
import secrets
import time
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.evaluation.datasets import LabelledImageSource, VocLayoutDataset
from deeplab_ros.core.evaluation.evaluate import evaluate, EvaluationResult
from deeplab_ros.core.inference.device import resolve_device
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.labels import LabelSet, resolve_labels, upgrade_class_names
from deeplab_ros.core.models import build_model
from deeplab_ros.core.training.config import TrainConfig
from deeplab_ros.core.training.data import AugmentedDataset, make_train_loader
from deeplab_ros.core.training.initialization import initialize_model
from deeplab_ros.core.training.progress import ProgressLine
from deeplab_ros.core.training.schedule import PolyLR
from deeplab_ros.core.training.state import (
    atomic_save, capture_rng_state, restore_rng_state, seed_everything)
from deeplab_ros.core.training.transforms import TrainTransform
from deeplab_ros.core.weights.checkpoint import (
    CheckpointError, CheckpointMetadata, DEFAULT_INPUT_SIZE, save_checkpoint)

#: File names inside the output folder.
STATE_FILE = 'train_state.pt'
LAST_MODEL_FILE = 'model_last.pt'
BEST_MODEL_FILE = 'model_best.pt'

STATE_FORMAT = 1

# Settings a resumed run may change; the others define the run and come from the state.
RESUME_OVERRIDABLE = ('output_dir', 'stop_after', 'workers', 'device', 'amp', 'progress',
                      'save_every')


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.fit` did."""

    step: int
    total_steps: int
    losses: list[float] = field(default_factory=list)      # every step of the whole run
    validations: list[dict[str, Any]] = field(default_factory=list)
    state_path: Path | None = None
    last_model: Path | None = None
    best_model: Path | None = None
    finished: bool = False


class Trainer:
    """Fine-tunes a registered segmentation model on a PASCAL VOC layout dataset."""

    def __init__(self, config: TrainConfig, *,
                 train_samples: LabelledImageSource | None = None,
                 val_samples: LabelledImageSource | None = None,
                 labels: LabelSet | None = None, log: Any = print,
                 initialize: bool = True) -> None:
        """Prepare data, model, optimiser and schedule.

        Args:
            config: The run's settings.
            train_samples: Training samples instead of the dataset's ``train_split``.
            val_samples: Validation samples instead of the dataset's ``val_split``.
            labels: Label set instead of ``config.labels``.
            log: Called with one line of text per event worth reporting.
            initialize: Initialise the weights per ``config.init`` (a resumed run does not).
        """
        self.config = config
        self.log = log
        if config.seed is None:
            config.seed = secrets.randbelow(2**31)
        seed_everything(config.seed, deterministic=config.deterministic)
        self.labels = labels if labels is not None else resolve_labels(config.labels)
        self.device = resolve_device(config.device)
        self.train_samples = (train_samples if train_samples is not None
                              else self._open_split(config.train_split))
        if val_samples is not None:
            self.val_samples: LabelledImageSource | None = val_samples
        elif config.val_split:
            self.val_samples = self._open_split(config.val_split)
        else:
            self.val_samples = None
        self.steps_per_epoch = len(self.train_samples) // config.batch_size
        if self.steps_per_epoch == 0:
            raise InvalidSettingError(
                f'The {config.train_split!r} split has {len(self.train_samples)} images, fewer '
                f'than one batch of {config.batch_size}; lower the batch size or add images.',
                setting='batch_size')
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.train_transform = TrainTransform(
            crop_size=config.crop_size, scale_range=config.scale_range,
            flip_probability=config.flip_probability, ignore_index=self.labels.ignore_index)
        self.dataset = AugmentedDataset(self.train_samples, self.train_transform, config.seed)

        self.model = build_model(config.variant, num_classes=len(self.labels),
                                 output_stride=config.output_stride, **config.model_options)
        self.init_report = self.initialize() if initialize else ''
        self.model.to(self.device)
        self.optimizer = torch.optim.SGD(
            self._parameter_groups(), lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay)
        self.scheduler = PolyLR(self.optimizer, self.total_steps, power=config.poly_power)
        self.use_amp = bool(config.amp and self.device.type == 'cuda')
        self.scaler = torch.amp.GradScaler('cuda', enabled=self.use_amp)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.losses: list[float] = []
        self.validations: list[dict[str, Any]] = []
        self.best_miou = -math.inf

    # -- construction helpers ------------------------------------------------------------------

    def _open_split(self, split: str) -> VocLayoutDataset:
        return VocLayoutDataset(self.config.dataset, split, self.labels)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        backbone: list[nn.Parameter] = []
        head: list[nn.Parameter] = []
        for name, parameter in self.model.named_parameters():
            if not parameter.requires_grad:
                continue
            (backbone if name.startswith('backbone.') else head).append(parameter)
        groups = [{'params': head, 'lr': self.config.lr}]
        if backbone:
            groups.append({'params': backbone,
                           'lr': self.config.lr * self.config.backbone_lr_factor})
        return groups

    def initialize(self) -> str:
        """Initialise the weights per ``config.init``; returns a one-line description."""
        self.init_report = initialize_model(self.model, self.config.init,
                                            variant=self.config.variant,
                                            model_options=self.config.model_options)
        self.model.to(self.device)
        return self.init_report

    @classmethod
    def resume(cls, state_path: str | Path, *, log: Any = print,
               **overrides: Any) -> 'Trainer':
        """Rebuild a run from a training state written by :meth:`save_state`.

        Only the settings in :data:`RESUME_OVERRIDABLE` may be overridden; the saved
        ``stop_after`` is dropped, so the run continues to its end unless told otherwise.
        """
        state_path = Path(state_path)
        if not state_path.is_file():
            raise CheckpointError(f'Training state not found: {state_path}. Pass the '
                                  f'{STATE_FILE} written into a previous run\'s output folder.')
        try:
            state = torch.load(state_path, map_location='cpu', weights_only=True)
        except Exception as error:  # noqa: BLE001 - report any unreadable file the same way
            raise CheckpointError(f'Cannot read training state {state_path}: {error}') from error
        if not isinstance(state, dict) or state.get('format') != STATE_FORMAT:
            raise CheckpointError(
                f'{state_path} is not a training state of this version (expected the '
                f'{STATE_FILE} written by deeplab-ros-train); to start from exported weights '
                'initialise with checkpoint:PATH instead.')
        unknown = set(overrides) - set(RESUME_OVERRIDABLE)
        if unknown:
            raise InvalidSettingError(f'Cannot change {sorted(unknown)} when resuming; only '
                                      f'{list(RESUME_OVERRIDABLE)} may differ from the saved '
                                      'run.')
        values = dict(state['config'])
        values['stop_after'] = 0  # a stop point belongs to the run that stopped there
        values.update({key: value for key, value in overrides.items() if value is not None})
        config = TrainConfig.from_dict(values)
        trainer = cls(config, labels=LabelSet(state['labels']['name'],
                                              upgrade_class_names(
                                                  tuple(state['labels']['class_names'])),
                                              tuple(tuple(c) for c in state['labels']['palette']),
                                              state['labels']['ignore_index']),
                      log=log, initialize=False)
        trainer.load_state(state)
        return trainer

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run bit for bit."""
        return {
            'format': STATE_FORMAT,
            'config': self.config.to_dict(),
            'labels': {'name': self.labels.name, 'class_names': list(self.labels.class_names),
                       'palette': [list(color) for color in self.labels.palette],
                       'ignore_index': self.labels.ignore_index},
            'model': self.model.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'scaler': self.scaler.state_dict(),
            'step': self.step, 'epoch': self.epoch, 'batch_in_epoch': self.batch_in_epoch,
            'losses': list(self.losses),
            'validations': list(self.validations),
            'best_miou': self.best_miou,
            'init_report': self.init_report,
            'rng': capture_rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`state_dict`."""
        self.model.load_state_dict(state['model'])
        self.model.to(self.device)
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
        self.step = int(state['step'])
        self.epoch = int(state['epoch'])
        self.batch_in_epoch = int(state['batch_in_epoch'])
        self.losses = [float(value) for value in state['losses']]
        self.validations = list(state['validations'])
        self.best_miou = float(state['best_miou'])
        self.init_report = str(state.get('init_report', ''))
        restore_rng_state(state['rng'])

    def save_state(self) -> Path:
        """Write the resumable training state into the output folder."""
        return atomic_save(self.state_dict(), Path(self.config.output_dir) / STATE_FILE)

    def metadata(self) -> CheckpointMetadata:
        """Checkpoint metadata for the model being trained (labels, preprocessing, size)."""
        return CheckpointMetadata(
            variant=self.config.variant, num_classes=len(self.labels),
            output_stride=self.config.output_stride,
            model_options=dict(self.config.model_options),
            class_names=tuple(self.labels.class_names),
            palette=tuple((red, green, blue) for red, green, blue in self.labels.palette),
            mean=self.train_transform.mean, std=self.train_transform.std,
            input_size=self.config.input_size or DEFAULT_INPUT_SIZE,
            source=(f'deeplab-ros-train on {self.config.dataset} ({self.config.train_split}), '
                    f'step {self.step}/{self.total_steps}, init {self.config.init}'))

    def export(self, path: str | Path) -> Path:
        """Save the current weights with metadata: a checkpoint the segmenter loads as is."""
        return save_checkpoint(Path(path), self.model, self.metadata())

    # -- training ----------------------------------------------------------------------------

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the pixels that are not ``ignore_index``."""
        if not bool((targets != self.labels.ignore_index).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), targets, ignore_index=self.labels.ignore_index)

    def train_step(self, images: torch.Tensor, targets: torch.Tensor) -> float:
        """One optimiser step on a batch; returns the loss."""
        images = images.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        autocast = (torch.autocast('cuda', dtype=torch.float16) if self.use_amp
                    else nullcontext())
        with autocast:
            logits = self.model(images)
        loss = self.loss(logits, targets)
        if not torch.isfinite(loss):
            raise ConfigurationError(
                f'The training loss became {loss.item()} at step {self.step + 1}; lower the '
                'learning rate (or check the label masks hold class ids below the number of '
                'classes).', setting='lr')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    def validate(self, samples: LabelledImageSource | None = None) -> EvaluationResult:
        """Score the current model on ``samples`` (default: the validation split).

        The model runs inside a :class:`Segmenter` built from the metadata it will be
        exported with, so the score is the one ``deeplab-ros-eval`` and the node reproduce.
        """
        samples = self.val_samples if samples is None else samples
        if samples is None:
            raise ValueError('No validation split is configured.')
        was_training = self.model.training
        segmenter = Segmenter(self.model, self.metadata(), device=self.device,
                              input_size=self.config.val_size or None, half=False,
                              backend='torch')
        try:
            return evaluate(segmenter, samples)
        finally:
            self.model.train(was_training)

    def _validate_and_export(self, output: Path, result: TrainResult) -> None:
        result.last_model = self.export(output / LAST_MODEL_FILE)
        if self.val_samples is None:
            return
        scores = self.validate()
        record = {'epoch': self.epoch, 'step': self.step, **scores.to_dict()}
        self.validations.append(record)
        self.log(f'validation after epoch {self.epoch} (step {self.step}): '
                 f'mIoU {scores.mean_iou:.4f}, pixel accuracy {scores.pixel_accuracy:.4f}')
        if scores.mean_iou > self.best_miou:
            self.best_miou = scores.mean_iou
            result.best_model = self.export(output / BEST_MODEL_FILE)

    def fit(self) -> TrainResult:
        """Train until the schedule ends (or ``stop_after`` steps); returns what happened."""
        config = self.config
        output = Path(config.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        stop_at = self.total_steps
        if config.stop_after:
            stop_at = min(stop_at, config.stop_after)
        result = TrainResult(step=self.step, total_steps=self.total_steps)
        progress = ProgressLine(self.total_steps, initial=self.step, enabled=config.progress)
        self.model.train()
        started = time.perf_counter()
        try:
            while self.step < stop_at:
                loader = make_train_loader(
                    self.dataset, batch_size=config.batch_size, epoch=self.epoch,
                    skip_batches=self.batch_in_epoch, workers=config.workers,
                    pin_memory=self.device.type == 'cuda')
                for images, targets in loader:
                    loss = self.train_step(images, targets)
                    self.losses.append(loss)
                    self.step += 1
                    self.batch_in_epoch += 1
                    progress.update(1, loss=loss, lr=self.optimizer.param_groups[0]['lr'])
                    if self.step >= stop_at:
                        break
                    if config.save_every and self.step % config.save_every == 0:
                        self.save_state()
                if self.batch_in_epoch >= self.steps_per_epoch:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    last = self.step >= self.total_steps
                    if last or (config.val_every and self.epoch % config.val_every == 0):
                        self._validate_and_export(output, result)
                    self.save_state()
        finally:
            progress.close()
        if self.step >= self.total_steps and self.batch_in_epoch:
            # The schedule ended inside an epoch (max_steps): score and export that end point.
            self._validate_and_export(output, result)
        elif result.last_model is None:
            result.last_model = self.export(output / LAST_MODEL_FILE)
        result.state_path = self.save_state()
        elapsed = time.perf_counter() - started
        result.step = self.step
        result.losses = list(self.losses)
        result.validations = list(self.validations)
        result.finished = self.step >= self.total_steps
        best = output / BEST_MODEL_FILE
        result.best_model = best if best.is_file() else None
        self.log(f'{"finished" if result.finished else "stopped"} at step {self.step}/'
                 f'{self.total_steps} in {elapsed:.1f} s; weights: {result.last_model}')
        return result
