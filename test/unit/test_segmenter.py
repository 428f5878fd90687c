"""The segmenter on real photos: sizes, layouts, batches, presence, colour, overlay, devices."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import torch.nn.functional as F

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.inference.device import DeviceUnavailableError, resolve_device
from deeplab_ros.core.inference.postprocess import resize_nearest
from deeplab_ros.core.inference.preprocess import FrameError, Preprocessor
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.inference.stage_timer import STAGES, StageTimer
from deeplab_ros.core.labels import voc_labels

VOC_MODEL = 'pretrained:deeplabv3_mnv2_dm05_float'


@pytest.fixture(scope='module')
def segmenter() -> Segmenter:
    """The pretrained PASCAL VOC model at its own input size, on the CPU."""
    return Segmenter.from_checkpoint(VOC_MODEL, device='cpu')


def _photo(shared: Path, name: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(shared / 'data/photos' / name))[..., ::-1])


@pytest.mark.parametrize('name, expected', [('basketball1.png', 'person'), ('pets.jpg', 'dog'),
                                            ('grace_hopper.bmp', 'person'), ('cat.bmp', 'cat')])
def test_finds_the_subject_of_real_photos(shared: Path, segmenter: Segmenter, name: str,
                                          expected: str) -> None:
    frame = _photo(shared, name)
    result = segmenter.segment(frame)
    assert result.labels.shape == frame.shape[:2] and result.labels.dtype == np.uint8
    index = voc_labels().class_names.index(expected)
    assert result.class_fractions.get(index, 0.0) > 0.05, result.class_fractions


def test_default_model_finds_scene_classes_in_a_street(shared: Path) -> None:
    default = Segmenter.from_checkpoint('pretrained', device='cpu')
    assert default.metadata.variant == 'deeplabv3plus_mobilenetv2_tf'
    frame = np.ascontiguousarray(cv2.imread(
        str(shared / 'data/ade20k/ADE_val_00000003.jpg'))[..., ::-1])
    result = default.segment(frame)
    found = {default.labels.class_names[index] for index, fraction in
             result.class_fractions.items() if fraction > 0.01}
    assert {'road', 'sidewalk', 'sky', 'building', 'car'} <= found, found


def test_fractions_match_the_label_image(shared: Path, segmenter: Segmenter) -> None:
    result = segmenter.segment(_photo(shared, 'pets.jpg'))
    counts = np.bincount(result.labels.ravel(), minlength=21) / result.labels.size
    assert sum(result.class_fractions.values()) == pytest.approx(1.0)
    for index, fraction in result.class_fractions.items():
        assert fraction == pytest.approx(counts[index])
    assert set(result.class_fractions) == set(np.flatnonzero(counts))


@pytest.mark.parametrize('size', [(31, 517), (333, 97), (1, 1), (480, 640), (1080, 1920)])
def test_any_frame_size(segmenter: Segmenter, size: tuple[int, int]) -> None:
    frame = np.random.default_rng(1).integers(0, 255, (*size, 3), dtype=np.uint8)
    assert segmenter.segment(frame).labels.shape == size


def test_strided_views_give_the_same_labels(shared: Path, segmenter: Segmenter) -> None:
    frame = _photo(shared, 'basketball1.png')
    bgra = np.dstack([frame[..., ::-1], np.full(frame.shape[:2], 255, np.uint8)])
    view = bgra[..., 2::-1]  # a non-contiguous RGB view of BGRA data
    assert not view.flags['C_CONTIGUOUS']
    assert np.array_equal(segmenter.segment(view).labels, segmenter.segment(frame).labels)


def test_batches_of_different_sizes_equal_single_frames(shared: Path,
                                                        segmenter: Segmenter) -> None:
    frames = [_photo(shared, 'pets.jpg'), _photo(shared, 'basketball1.png')[:300, :200]]
    batch = segmenter.segment_batch(frames)
    for frame, result in zip(frames, batch):
        single = segmenter.segment(frame)
        assert result.labels.shape == frame.shape[:2]
        assert (result.labels == single.labels).mean() > 0.999


def test_colour_overlay_and_confidence_agree_with_labels(shared: Path,
                                                         segmenter: Segmenter) -> None:
    frame = _photo(shared, 'pets.jpg')
    result = segmenter.segment(frame, color=True, overlay=True, confidence=True,
                               overlay_alpha=0.25)
    palette = voc_labels().palette_lut()
    assert np.array_equal(result.color, palette[result.labels])
    expected = np.round(frame * 0.75 + result.color.astype(np.float64) * 0.25)
    background = result.labels == 0
    expected[background] = frame[background]  # the background stays unpainted
    assert background.any() and (~background).any()
    assert np.abs(result.overlay.astype(int) - expected.astype(int)).max() <= 1
    assert result.confidence.shape == frame.shape[:2]
    assert result.confidence.min() >= 255 // 21 and result.confidence.max() > 200
    plain = segmenter.segment(frame)
    assert plain.color is None and plain.overlay is None and plain.confidence is None


def test_exact_labels_match_dense_labels_closely(shared: Path) -> None:
    frame = _photo(shared, 'pets.jpg')
    exact = Segmenter.from_checkpoint(VOC_MODEL, device='cpu', input_size=257)
    dense = Segmenter.from_checkpoint(VOC_MODEL, device='cpu', input_size=257,
                                      upsample='dense')
    assert exact.upsample == 'exact' and dense.upsample == 'dense'
    exact_result = exact.segment(frame, confidence=True)
    dense_result = dense.segment(frame, confidence=True)
    assert (exact_result.labels == dense_result.labels).mean() > 0.98
    # The same probability at the input's pixels, spread to the frame's nearest-neighbour:
    # OpenCV's nearest resize of the dense path picks the next pixel on a few rows.
    difference = np.abs(exact_result.confidence.astype(int)
                        - dense_result.confidence.astype(int))
    assert (difference <= 1).mean() > 0.995


def test_bad_frames_and_settings_are_explained(segmenter: Segmenter) -> None:
    with pytest.raises(FrameError, match='HxWx3 uint8'):
        segmenter.segment(np.zeros((10, 10), np.uint8))
    with pytest.raises(FrameError, match='HxWx3 uint8'):
        segmenter.segment(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match='overlay_alpha'):
        segmenter.segment(np.zeros((10, 10, 3), np.uint8), overlay=True, overlay_alpha=1.5)


def test_matches_a_plain_reference_pipeline(shared: Path, segmenter: Segmenter) -> None:
    # A frame exactly the network's size needs no resize: labels and confidence must equal
    # arg-max and softmax of the model on (x / 255 - mean) / std, computed here by hand.
    size = segmenter.input_size
    frame = cv2.resize(_photo(shared, 'pets.jpg'), (size, size), interpolation=cv2.INTER_AREA)
    mean = np.array(segmenter.metadata.mean, np.float32)
    std = np.array(segmenter.metadata.std, np.float32)
    normalised = (frame.astype(np.float32) / 255.0 - mean) / std
    with torch.inference_mode():
        logits = segmenter.model(torch.from_numpy(normalised).permute(2, 0, 1)[None])[0]
    expected = logits.argmax(0).numpy()
    expected_confidence = torch.softmax(logits, 0).max(0).values.numpy() * 255.0
    result = segmenter.segment(frame, confidence=True)
    assert (result.labels == expected).mean() > 0.9995
    agree = result.labels == expected
    assert np.abs(result.confidence[agree] - expected_confidence[agree]).max() <= 1.0


def test_padding_is_the_mean_colour(segmenter: Segmenter) -> None:
    batch = segmenter.prepare_batch([np.full((10, 40, 3), 255, np.uint8)])
    size = segmenter.input_size
    assert batch.shape == (1, 3, size, size)
    rows = round(10 * size / 40)
    assert torch.all(batch[0, :, rows:, :] == 0)  # normalised zero == the mean colour
    assert torch.all(batch[0, :, :rows, :] > 0)


@pytest.mark.parametrize('dtype, channels_last',
                         [(torch.float32, False), (torch.float16, True)])
def test_preprocessing_equals_resize_then_normalise_then_pad(
        shared: Path, dtype: torch.dtype, channels_last: bool) -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    preprocess = Preprocessor(97, mean, std, torch.device('cpu'), dtype, channels_last)
    photo = _photo(shared, 'pets.jpg')
    frames = [photo, np.ascontiguousarray(photo[:, :120]), photo[:97, :97].copy(),
              np.full((1, 1, 3), 7, np.uint8)]
    batch, placements, _ = preprocess(frames)
    assert batch.dtype == dtype and batch.shape == (4, 3, 97, 97)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert batch.is_contiguous(memory_format=layout)
    for frame, place, image in zip(frames, placements, batch):
        pixels = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        if (place.height, place.width) != frame.shape[:2]:
            pixels = F.interpolate(pixels, size=(place.height, place.width), mode='bilinear',
                                   align_corners=False)
        expected = (pixels / 255.0 - torch.tensor(mean).view(1, 3, 1, 1)) \
            / torch.tensor(std).view(1, 3, 1, 1)
        region = image[:, :place.height, :place.width].float()
        tolerance = 1e-5 if dtype == torch.float32 else 1e-2
        assert torch.allclose(region, expected[0], atol=tolerance), place
        assert not image[:, place.height:].any() and not image[:, :, place.width:].any()


def test_stage_timer_records_every_stage_of_each_call(segmenter: Segmenter) -> None:
    timer = StageTimer(segmenter.device)
    segmenter.stage_timer = timer
    try:
        frame = np.zeros((30, 40, 3), np.uint8)
        segmenter.segment(frame)
        segmenter.segment_batch([frame, frame])
    finally:
        segmenter.stage_timer = None
    assert list(timer.samples_ms) == list(STAGES)
    assert all(len(values) == 2 and min(values) >= 0.0 for values in timer.samples_ms.values())
    assert timer.medians_ms()['forward'] > 0.0
    segmenter.segment(frame)  # detached: nothing more recorded
    assert all(len(values) == 2 for values in timer.samples_ms.values())


@pytest.mark.parametrize('source, target', [((7, 11), (480, 640)), ((385, 513), (1080, 1920)),
                                            ((40, 3), (13, 1))])
def test_label_resize_equals_nearest_exact(source: tuple[int, int],
                                           target: tuple[int, int]) -> None:
    labels = torch.randint(0, 21, source, dtype=torch.uint8)
    expected = F.interpolate(labels[None, None], size=target, mode='nearest-exact')[0, 0]
    assert torch.equal(resize_nearest(labels, target), expected)


def test_unknown_upsample_mode_is_refused(segmenter: Segmenter) -> None:
    with pytest.raises(InvalidSettingError, match="upsample must be one of .*'exact', 'dense'"):
        Segmenter(segmenter.model, segmenter.metadata, device='cpu', upsample='bicubic')


def test_devices() -> None:
    assert resolve_device('cpu').type == 'cpu'
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(InvalidSettingError, match='Unknown device'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match='CUDA is not available'):
            resolve_device('cuda:0')


def test_close_releases_the_model() -> None:
    segmenter = Segmenter.from_checkpoint('pretrained:deeplabv3_mnv2_dm05_dequant',
                                          device='cpu', input_size=129)
    segmenter.close()
    with pytest.raises(RuntimeError, match='closed'):
        segmenter.segment(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_half_precision_agrees_with_cpu(shared: Path) -> None:
    frame = _photo(shared, 'pets.jpg')
    settings = dict(input_size=513, output_stride=8)  # the default model's CUDA settings
    cpu = Segmenter.from_checkpoint('pretrained', device='cpu', **settings)
    gpu = Segmenter.from_checkpoint('pretrained', device='cuda', half=True, **settings)
    assert Segmenter.from_checkpoint('pretrained', device='cuda').input_size == 513
    assert (cpu.segment(frame).labels == gpu.segment(frame).labels).mean() > 0.99
    # Every output comes back (pinned, non-blocking copies, one wait) for a mixed-size batch.
    small = frame[::2, ::3].copy()
    extras = dict(confidence=True, color=True, overlay=True)
    for on_cpu, on_gpu in zip(cpu.segment_batch([frame, small], **extras),
                              gpu.segment_batch([frame, small], **extras)):
        assert on_gpu.labels.shape == on_cpu.labels.shape and on_gpu.labels.dtype == np.uint8
        assert (on_gpu.labels == on_cpu.labels).mean() > 0.99
        assert set(on_gpu.class_fractions) >= {k for k, v in on_cpu.class_fractions.items()
                                               if v > 0.01}
        assert sum(on_gpu.class_fractions.values()) == pytest.approx(1.0)
        for name in ('confidence', 'color', 'overlay'):
            host, device = getattr(on_cpu, name), getattr(on_gpu, name)
            assert device.shape == host.shape and device.dtype == np.uint8
            assert np.abs(device.astype(int) - host.astype(int)).mean() < 3.0, name
