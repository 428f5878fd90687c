"""Fine-tuning: augmentations, schedule, and the trainer on a tiny real VOC-layout dataset."""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.training.data import epoch_permutation, EpochBatchSampler
from deeplab_ros.core.training.schedule import PolyLR
from deeplab_ros.core.training.transforms import sample_generator, TrainTransform


# ---------------------------------------------------------------------------------------------
# Augmentations, sampling and schedule (no model needed)
# ---------------------------------------------------------------------------------------------


def _pair(height: int = 40, width: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """An image whose red channel encodes the column and whose mask encodes the row band."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8)[None, :]
    image[..., 1] = np.arange(height, dtype=np.uint8)[:, None]
    target = (np.arange(height)[:, None] // 10).repeat(width, axis=1).astype(np.uint8)
    return image, target


def test_train_transform_crops_pads_with_ignore_and_keeps_pixels_aligned() -> None:
    image, target = _pair()
    transform = TrainTransform(crop_size=64, scale_range=(1.0, 1.0), flip_probability=0.0,
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    pixels, mask = transform(image, target, sample_generator(0, 0, 0))
    assert pixels.shape == (3, 64, 64) and mask.shape == (64, 64)
    assert mask.dtype == torch.int64
    # The 40x60 pair is padded at the bottom/right: the padding is ignore in the mask.
    assert (mask[40:, :] == 255).all() and (mask[:, 60:] == 255).all()
    assert not (mask[:40, :60] == 255).any()
    # Every labelled pixel keeps its own mask value (row band == green // 10).
    green = torch.round(pixels[1] * 255).long()
    valid = mask != 255
    assert torch.equal(mask[valid], green[valid] // 10)


def test_train_transform_flip_and_scale_move_image_and_mask_together() -> None:
    image, target = _pair(80, 80)
    target = (np.arange(80)[None, :] // 20).repeat(80, axis=0).astype(np.uint8)  # column bands
    transform = TrainTransform(crop_size=48, scale_range=(0.75, 1.5), flip_probability=0.5,
                               mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    flips = 0
    for index in range(12):
        pixels, mask = transform(image, target, sample_generator(3, 0, index))
        red = torch.round(pixels[0] * 255).long()
        valid = mask != 255
        # Bilinear resizing blurs the column ramp by at most a couple of values: the band
        # the image says must equal the band the mask says, except right at band edges.
        agree = ((red[valid] // 20) == mask[valid]).float().mean().item()
        assert agree > 0.9
        column_trend = red[:, -1].float().mean() - red[:, 0].float().mean()
        flips += int(column_trend < 0)
    assert 0 < flips < 12


def test_augmentation_depends_only_on_seed_epoch_and_index() -> None:
    image, target = _pair(70, 90)
    transform = TrainTransform(crop_size=33, scale_range=(0.5, 2.0))
    first = transform(image, target, sample_generator(7, 2, 5))
    again = transform(image, target, sample_generator(7, 2, 5))
    other = transform(image, target, sample_generator(7, 3, 5))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_epoch_batches_are_seeded_and_skippable() -> None:
    batches = list(EpochBatchSampler(10, 3, seed=5, epoch=1))
    assert len(batches) == 3  # the incomplete last batch is dropped
    assert sorted(i for batch in batches for _, i in batch) == sorted(
        epoch_permutation(10, 5, 1)[:9])
    assert list(EpochBatchSampler(10, 3, seed=5, epoch=1, skip_batches=2)) == batches[2:]
    assert epoch_permutation(10, 5, 1) != epoch_permutation(10, 5, 2)


def test_poly_schedule_follows_closed_form_and_survives_state_round_trip() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    schedule = PolyLR(optimizer, total_steps=10, power=0.9, min_lr=0.0)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        schedule.step()
    expected = [0.1 * (1 - step / 10) ** 0.9 for step in range(10)]
    assert rates == pytest.approx(expected)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.0)

    optimizer2 = torch.optim.SGD([parameter], lr=0.1)
    resumed = PolyLR(optimizer2, total_steps=10, power=0.9, min_lr=0.0)
    first = PolyLR(torch.optim.SGD([parameter], lr=0.1), total_steps=10, power=0.9)
    for _ in range(4):
        first.optimizer.step()
        first.step()
    resumed.load_state_dict(first.state_dict())
    resumed.step()
    assert optimizer2.param_groups[0]['lr'] == pytest.approx(0.1 * (1 - 5 / 10) ** 0.9)
    assert math.isfinite(optimizer2.param_groups[0]['lr'])


# ---------------------------------------------------------------------------------------------
# Validation path: scores against an independent computation on hand-made masks
# ---------------------------------------------------------------------------------------------

CLASS_STEP = 60  # the oracle model reads class id = red channel / CLASS_STEP


class RedChannelOracle(torch.nn.Module):
    """Predicts, for every pixel, the class written into the image's red channel."""

    def __init__(self, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mean = mean[0]
        self.std = std[0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        red = (pixels[:, 0] * self.std + self.mean) * 255.0
        classes = torch.round(red / CLASS_STEP).long().clamp(0, self.num_classes - 1)
        return torch.nn.functional.one_hot(classes, self.num_classes).permute(0, 3, 1, 2).float()


@dataclass(frozen=True)
class HandMadeSample:
    """A labelled image in the shape the trainer reads (name, image_rgb, target)."""

    name: str
    image_rgb: np.ndarray
    target: np.ndarray


def _hand_made_samples() -> tuple[list[HandMadeSample], list[np.ndarray], list[np.ndarray]]:
    predictions = [
        np.array([[0, 0, 1, 1],
                  [0, 2, 2, 1],
                  [0, 0, 2, 1]], np.uint8),
        np.array([[1, 1, 1, 0],
                  [0, 0, 0, 0],
                  [2, 2, 0, 0]], np.uint8),
    ]
    targets = [
        np.array([[0, 0, 1, 255],
                  [0, 2, 1, 1],
                  [255, 0, 2, 2]], np.uint8),
        np.array([[1, 1, 0, 0],
                  [0, 255, 0, 0],
                  [0, 2, 0, 3]], np.uint8),
    ]
    # Each hand-made pixel becomes an 8x8 block, so the images are 24x32 (the segmenter's
    # smallest input is 17); ratios, and so every score, are those of the 3x4 arrays.
    predictions = [np.kron(array, np.ones((8, 8), np.uint8)) for array in predictions]
    targets = [np.kron(array, np.ones((8, 8), np.uint8)) for array in targets]
    samples = []
    for number, (prediction, target) in enumerate(zip(predictions, targets)):
        image = np.zeros(prediction.shape + (3,), np.uint8)
        image[..., 0] = prediction * CLASS_STEP
        image[..., 1] = 77
        samples.append(HandMadeSample(f'hand{number}', image, target))
    return samples, predictions, targets


def _independent_scores(predictions: list, targets: list,
                        num_classes: int) -> tuple[list[float], float, float]:
    intersections = [0] * num_classes
    unions = [0] * num_classes
    in_truth = [0] * num_classes
    correct = total = 0
    for prediction, target in zip(predictions, targets):
        for predicted, truth in zip(prediction.ravel().tolist(), target.ravel().tolist()):
            if truth == 255:
                continue
            total += 1
            correct += int(predicted == truth)
            in_truth[truth] += 1
            for cls in range(num_classes):
                is_pred, is_true = predicted == cls, truth == cls
                intersections[cls] += int(is_pred and is_true)
                unions[cls] += int(is_pred or is_true)
    ious = [intersections[c] / unions[c] if unions[c] else float('nan')
            for c in range(num_classes)]
    present = [ious[c] for c in range(num_classes) if in_truth[c]]
    return ious, sum(present) / len(present), correct / total


def test_scores_match_independent_computation_with_ignore_pixels() -> None:
    from deeplab_ros.core.evaluation.evaluate import evaluate
    from deeplab_ros.core.inference.segmenter import Segmenter
    from deeplab_ros.core.weights.checkpoint import CheckpointMetadata

    samples, predictions, targets = _hand_made_samples()
    metadata = CheckpointMetadata(variant='oracle', num_classes=4,
                                  class_names=('a', 'b', 'c', 'd'),
                                  palette=((0, 0, 0), (1, 1, 1), (2, 2, 2), (3, 3, 3)),
                                  input_size=32)
    model = RedChannelOracle(4, metadata.mean, metadata.std)
    # Input size 32 = the images' longer side: the letterbox neither resizes nor crops.
    seen = []
    result = evaluate(Segmenter(model, metadata, device='cpu', backend='torch'), samples,
                      on_image=lambda sample, _result, single: seen.append(
                          (sample.name, single.pixel_accuracy())))
    ious, mean_iou, accuracy = _independent_scores(predictions, targets, 4)
    # Hand check of one class: class 2 is predicted on 5 valid blocks, true on 4, both on 3.
    assert ious[2] == pytest.approx(3 / 6)
    assert ious[3] == 0.0  # in the truth once, never predicted
    assert result.images == 2
    assert [name for name, _ in seen] == ['hand0', 'hand1']
    assert result.iou == pytest.approx(ious, nan_ok=True)
    assert result.mean_iou == pytest.approx(mean_iou)
    assert result.pixel_accuracy == pytest.approx(accuracy)


# ---------------------------------------------------------------------------------------------
# The trainer on a tiny VOC-layout dataset made from the shared VOC validation images
# ---------------------------------------------------------------------------------------------

CROP = 129


@pytest.fixture(scope='module')
def tiny_dataset(shared: Path, tmp_path_factory: pytest.TempPathFactory):
    from support.datasets import build_tiny_voc_dataset

    return build_tiny_voc_dataset(tmp_path_factory.mktemp('tiny_voc'), shared / 'data' / 'voc_val')


def _config(dataset, output: Path, **overrides):
    from deeplab_ros.core.training.config import TrainConfig

    values = dict(dataset=str(dataset.root), output_dir=str(output),
                  labels=str(dataset.labels_file), variant='deeplabv3plus_mobilenetv2',
                  init='backbone', epochs=8, batch_size=4, crop_size=CROP,
                  scale_range=(0.75, 1.25), lr=0.02, backbone_lr_factor=0.1, device='cpu',
                  workers=0, seed=11, val_size=0, input_size=CROP, progress=False)
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope='module')
def fine_tuned(tiny_dataset, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One short fine-tune from the pretrained backbone, with train-split scores around it."""
    from deeplab_ros.core.training.trainer import Trainer

    torch.set_num_threads(2)
    trainer = Trainer(_config(tiny_dataset, tmp_path_factory.mktemp('fine_tune')))
    before = trainer.validate(trainer.train_samples)
    result = trainer.fit()
    after = trainer.validate(trainer.train_samples)
    return {'trainer': trainer, 'result': result, 'before': before, 'after': after}


def test_fine_tune_lowers_loss_and_raises_train_miou(fine_tuned: dict) -> None:
    result, before, after = fine_tuned['result'], fine_tuned['before'], fine_tuned['after']
    losses = result.losses
    print(f'\nloss {np.mean(losses[:3]):.3f} -> {np.mean(losses[-3:]):.3f} over {len(losses)} '
          f'steps; train mIoU {before.mean_iou:.3f} -> {after.mean_iou:.3f}, pixel accuracy '
          f'{before.pixel_accuracy:.3f} -> {after.pixel_accuracy:.3f}')
    assert result.finished and len(losses) == result.total_steps == 16
    assert np.mean(losses[-3:]) <= 0.5 * np.mean(losses[:3])
    # Sixteen steps from a new head: a model that has started to learn, not a good one. The
    # scores move the same way on every host, by amounts that differ with the CPU's kernels.
    assert after.pixel_accuracy >= before.pixel_accuracy + 0.05
    assert after.mean_iou >= before.mean_iou + 0.01
    # Validation ran after every epoch on the val split and was recorded.
    assert [record['epoch'] for record in result.validations] == list(range(1, 9))
    assert all(0.0 <= record['mean_iou'] <= 1.0 for record in result.validations)
    assert result.best_model is not None and result.best_model.is_file()


def test_validation_score_is_what_the_exported_checkpoint_scores(fine_tuned: dict) -> None:
    """The trainer's validation and ``deeplab-ros-eval`` share one scoring path."""
    from deeplab_ros.core.evaluation.evaluate import evaluate
    from deeplab_ros.core.inference.segmenter import Segmenter

    trainer, result = fine_tuned['trainer'], fine_tuned['result']
    segmenter = Segmenter.from_checkpoint(result.last_model, device='cpu')
    try:
        exported = evaluate(segmenter, trainer.val_samples)
    finally:
        segmenter.close()
    assert exported.images == len(trainer.val_samples)
    assert exported.mean_iou == pytest.approx(result.validations[-1]['mean_iou'], abs=1e-6)
    assert exported.pixel_accuracy == pytest.approx(result.validations[-1]['pixel_accuracy'],
                                                    abs=1e-6)


def test_exported_checkpoint_runs_in_the_segmenter_unchanged(fine_tuned: dict,
                                                             tiny_dataset) -> None:
    from support.datasets import CLASS_COLORS, CLASS_NAMES

    from deeplab_ros.core.inference.segmenter import Segmenter

    result = fine_tuned['result']
    segmenter = Segmenter.from_checkpoint(result.last_model)
    try:
        assert segmenter.labels.class_names == CLASS_NAMES
        assert tuple(map(tuple, segmenter.labels.palette)) == CLASS_COLORS
        assert segmenter.metadata.variant == 'deeplabv3plus_mobilenetv2'
        assert segmenter.metadata.num_classes == len(CLASS_NAMES)
        sample = fine_tuned['trainer'].train_samples[0]
        segmentation = segmenter.segment(sample.image_rgb, color=True)
        assert segmentation.labels.shape == sample.target.shape
        assert int(segmentation.labels.max()) < len(CLASS_NAMES)
        assert segmentation.color.shape == sample.target.shape + (3,)
    finally:
        segmenter.close()


@pytest.mark.ros
def test_exported_checkpoint_runs_in_the_node_with_only_its_path(fine_tuned: dict) -> None:
    from support.datasets import CLASS_NAMES
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Classification, LabelInfo

    from support.ros import decoded, image_message, LATCHED, node_under_test

    with node_under_test({'weights': str(fine_tuned['result'].last_model)}) as (node, tester):
        labels = tester.collect('/segmentation/labels', Image)
        classes = tester.collect('/segmentation/classes', Classification)
        info = tester.collect('/segmentation/label_info', LabelInfo, LATCHED)
        assert tester.lifecycle.change('configure') and tester.lifecycle.change('activate')
        assert tester.wait_for_subscriber('/image')
        sample = fine_tuned['trainer'].train_samples[0]
        tester.publisher('/image').publish(image_message(sample.image_rgb, stamp_ns=7))
        assert labels.wait_for(1, 60.0) and classes.wait_for(1, 30.0) and info.wait_for(1)
        assert [c.class_name for c in info.snapshot()[-1].class_map] == list(CLASS_NAMES)
        assert int(decoded(labels.snapshot()[0]).max()) < len(CLASS_NAMES)
        assert {int(h.class_id) for h in classes.snapshot()[0].results} <= \
            set(range(len(CLASS_NAMES)))


def test_pretrained_backbone_transfer_reproduces_the_original_features() -> None:
    from deeplab_ros.core.models import build_model
    from deeplab_ros.core.training.initialization import backbone_of, transfer_folded_backbone
    from deeplab_ros.core.weights.checkpoint import load_model
    from deeplab_ros.core.weights.pretrained import pretrained_checkpoint

    from deeplab_ros.core.models.backbones.mobilenetv2 import mobilenetv2_features

    source, _ = load_model(pretrained_checkpoint('deeplabv3_mnv2_dm10_dequant'))
    vainf = build_model('deeplabv3plus_mobilenetv2', num_classes=4, output_stride=16).eval()
    count = transfer_folded_backbone(backbone_of(source), backbone_of(vainf))
    assert count == 51  # stem + block 1 (2 convolutions) + 16 blocks of 3 convolutions
    # VainF's model pads differently from TensorFlow (see models.mobilenetv2), so the
    # features are compared on a conv + BatchNorm backbone that pads as the source does.
    target = mobilenetv2_features(output_stride=16, include_last_conv=False,
                                  padding='tf_same').eval()
    assert transfer_folded_backbone(backbone_of(source), target) == 51

    captured: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            captured[name] = output
        return hook

    # The last convolution's output (source: conv with folded bias; target: conv then BN).
    source_last = [m for m in backbone_of(source).modules()
                   if isinstance(m, torch.nn.Conv2d)][-1]
    target_modules = [m for m in target.modules()
                      if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    source_last.register_forward_hook(keep('source'))
    target_modules[-1].register_forward_hook(keep('target'))
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(1, 3, 65, 65, generator=generator)
    with torch.no_grad():
        source.eval()(pixels)
        target(pixels)
    assert captured['source'].shape == captured['target'].shape
    scale = captured['source'].abs().max().item()
    assert scale > 0
    assert torch.allclose(captured['source'], captured['target'], atol=1e-4 * scale, rtol=1e-4)


def test_resume_continues_exactly_where_an_uninterrupted_run_goes(tiny_dataset,
                                                                  tmp_path: Path) -> None:
    from deeplab_ros.core.training.trainer import Trainer
    from deeplab_ros.tools import train as train_tool

    settings = dict(init='none', epochs=2, batch_size=2, crop_size=65, val_split='',
                    lr=0.01)
    whole = Trainer(_config(tiny_dataset, tmp_path / 'whole', **settings)).fit()
    assert whole.total_steps == 8

    common = ['--dataset', str(tiny_dataset.root), '--labels', str(tiny_dataset.labels_file),
              '--init', 'none', '--epochs', '2', '--batch-size', '2', '--crop-size', '65',
              '--scale-range', '0.75', '1.25', '--lr', '0.01', '--device', 'cpu',
              '--workers', '0', '--seed', '11', '--val-split', '', '--no-progress']
    staged = tmp_path / 'staged'
    assert train_tool.main(common + ['--output', str(staged), '--stop-after', '5']) == 0
    first = torch.load(staged / 'train_state.pt', weights_only=True)
    assert first['step'] == 5 and first['epoch'] == 1 and first['batch_in_epoch'] == 1
    assert train_tool.main(['--resume', str(staged / 'train_state.pt'), '--workers', '0',
                            '--no-progress']) == 0
    resumed = torch.load(staged / 'train_state.pt', weights_only=True)
    assert resumed['step'] == 8
    assert resumed['losses'] == whole.losses
    whole_weights = torch.load(whole.last_model, weights_only=True)['model_state']
    staged_weights = torch.load(staged / 'model_last.pt', weights_only=True)['model_state']
    assert whole_weights.keys() == staged_weights.keys()
    for key, value in whole_weights.items():
        assert torch.equal(value, staged_weights[key]), key


def test_bad_settings_are_explained(tiny_dataset, tmp_path: Path) -> None:
    from deeplab_ros.core.training.config import TrainConfig
    from deeplab_ros.core.training.trainer import Trainer

    with pytest.raises(InvalidSettingError, match='batch_size must be at least 2'):
        _config(tiny_dataset, tmp_path, batch_size=1)
    with pytest.raises(InvalidSettingError, match='fewer than one batch'):
        Trainer(_config(tiny_dataset, tmp_path, init='none', batch_size=64))
    with pytest.raises(InvalidSettingError, match='Unknown initialisation'):
        Trainer(_config(tiny_dataset, tmp_path, init='imagenet'))
    with pytest.raises(InvalidSettingError, match='no pretrained backbone'):
        Trainer(_config(tiny_dataset, tmp_path, variant='lraspp_mobilenetv3_large'))
    assert isinstance(TrainConfig.from_dict(_config(tiny_dataset, tmp_path).to_dict()),
                      TrainConfig)
