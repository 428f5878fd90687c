"""Exact labels from low-resolution logits: the dense reference, every resize convention,
frames of every shape, chunking, ties, and the mapping of every registered model; the
confidence image against its dense definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplab_ros.core.inference import exact_upsample
from deeplab_ros.core.inference.exact_upsample import (
    axis_sampling, AxisSampling, exact_labels, top_probability, top_probability_image)
from deeplab_ros.core.inference.preprocess import placement_for
from deeplab_ros.core.models import available_models, build_model, model_spec
from deeplab_ros.core.models.activation_quantization import quantize_activations
from deeplab_ros.core.models.logits import logits_resize, LogitsOnly
from deeplab_ros.core.models.resize import RESIZE_MODES
from support.dense_labels import (
    assert_confidence_close, assert_equals_dense_reference, dense_reference, reference_confidence)

CPU = torch.device('cpu')
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA GPU (none here)')


def _logits(classes: int, height: int, width: int, seed: int, device: torch.device,
            smooth: bool = True) -> torch.Tensor:
    """Random logits with regions like a network's (smoothed noise), or raw noise."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, classes, height, width), generator=generator) * 4.0
    if smooth:
        noise = F.avg_pool2d(noise, 5, 1, 2, count_include_pad=False) * 3.0
    return noise[0].to(device)


def _sampling(frame: tuple[int, int], input_size: int, logits: torch.Tensor, resize: str
              ) -> tuple[AxisSampling, AxisSampling]:
    place = placement_for(frame[0], frame[1], input_size)
    return (axis_sampling(frame[0], place.height, input_size, logits.shape[1], resize,
                          logits.device),
            axis_sampling(frame[1], place.width, input_size, logits.shape[2], resize,
                          logits.device))


def assert_exact(logits: torch.Tensor, rows: AxisSampling, columns: AxisSampling) -> None:
    """Exact labels of ``logits`` equal the dense reference's."""
    labels, counts = exact_labels(logits, rows, columns)
    assert labels.dtype == torch.uint8
    assert_equals_dense_reference(labels, dense_reference(logits, rows, columns, False))
    # The counts, made from the quads' blocks, are those of the label image.
    assert torch.equal(counts, torch.bincount(labels.reshape(-1).long(),
                                              minlength=logits.shape[0]))


FRAMES = [(1, 1), (1, 9), (9, 1), (2, 3), (37, 500), (500, 37), (97, 97), (240, 320),
          (540, 960)]


@pytest.mark.parametrize('resize', RESIZE_MODES)
@pytest.mark.parametrize('frame', FRAMES, ids=[f'{h}x{w}' for h, w in FRAMES])
def test_labels_equal_the_dense_reference(resize: str, frame: tuple[int, int]) -> None:
    logits = _logits(21, 25, 25, seed=frame[0] * 7 + frame[1], device=CPU)
    assert_exact(logits, *_sampling(frame, 97, logits, resize))


@pytest.mark.parametrize('classes, cells, input_size', [(151, 97, 385), (19, 13, 385),
                                                        (2, 33, 129)])
def test_many_or_few_classes_and_raw_noise(classes: int, cells: int, input_size: int) -> None:
    for smooth in (True, False):
        logits = _logits(classes, cells, cells, seed=classes, device=CPU, smooth=smooth)
        assert_exact(logits, *_sampling((480, 640), input_size, logits, 'align_corners'))


def test_ties_break_only_between_equal_values() -> None:
    logits = _logits(6, 17, 17, seed=3, device=CPU)
    logits[4] = logits[1]        # two classes equal everywhere
    logits[:, 5:9, 5:9] = 0.0    # every class equal on a patch
    logits = logits.round()      # many equal values
    rows, columns = _sampling((300, 200), 65, logits, 'half_pixel')
    assert_exact(logits, rows, columns)
    labels = exact_labels(logits, rows, columns).labels
    assert labels.max() < 6


def test_chunks_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = _logits(40, 25, 25, seed=5, device=CPU)
    rows, columns = _sampling((480, 640), 97, logits, 'tf_legacy')
    whole = (*exact_labels(logits, rows, columns), top_probability(logits, rows, columns))
    monkeypatch.setattr(exact_upsample, 'CHUNK_ELEMENTS', 64)
    chunked = (*exact_labels(logits, rows, columns), top_probability(logits, rows, columns))
    assert all(torch.equal(one, other) for one, other in zip(whole, chunked))


@pytest.mark.parametrize('resize', RESIZE_MODES)
@pytest.mark.parametrize('classes, cells', [(151, 25), (19, 13), (2, 9)])
def test_top_probability_equals_the_dense_softmax(resize: str, classes: int,
                                                  cells: int) -> None:
    logits = _logits(classes, cells, cells, seed=classes + cells, device=CPU)
    rows, columns = _sampling((150, 260), 97, logits, resize)
    expected = dense_reference(logits, rows, columns).confidence
    assert expected is not None
    assert_confidence_close(top_probability(logits, rows, columns), expected)


# (frame, input size): larger than its region in the network input (the input's pixels),
# smaller (the frame's own: a letterbox keeps the aspect, so never one way of each), a thin
# strip, a single pixel.
CONFIDENCE_FRAMES = [((1080, 1920), 97), ((480, 640), 385), ((200, 300), 385),
                     ((3, 700), 129), ((1, 1), 33)]


@pytest.mark.parametrize('frame, input_size', CONFIDENCE_FRAMES,
                         ids=[f'{f[0]}x{f[1]}-in{s}' for f, s in CONFIDENCE_FRAMES])
def test_confidence_image_is_the_probability_at_the_network_s_detail(
        frame: tuple[int, int], input_size: int) -> None:
    logits = _logits(21, 25, 25, seed=frame[1], device=CPU)
    place = placement_for(frame[0], frame[1], input_size)
    region = (place.height, place.width)
    probability = top_probability_image(logits, frame, region, input_size, 'align_corners')
    assert_confidence_close(probability, reference_confidence(
        logits, frame, region, input_size, 'align_corners'))
    if frame[0] <= region[0] and frame[1] <= region[1]:  # at the frame's own pixels
        rows, columns = _sampling(frame, input_size, logits, 'align_corners')
        assert torch.equal(probability, top_probability(logits, rows, columns))


def test_float16_logits_are_interpolated_in_float32() -> None:
    logits = _logits(21, 25, 25, seed=8, device=CPU)
    rows, columns = _sampling((120, 160), 97, logits, 'align_corners')
    half = exact_labels(logits.half(), rows, columns).labels
    assert torch.equal(half, exact_labels(logits.half().float(), rows, columns).labels)
    assert torch.equal(top_probability(logits.half(), rows, columns),
                       top_probability(logits.half().float(), rows, columns))


def test_sampling_stays_inside_the_frame_region_and_the_logits() -> None:
    for resize in RESIZE_MODES:
        for frame, region, logits in ((1, 385, 97), (480, 289, 97), (4000, 385, 25),
                                      (3, 2, 1)):
            axis = axis_sampling(frame, region, 385, logits, resize, CPU)
            assert axis.lower.numel() == frame
            assert int(axis.lower.min()) >= 0 and int(axis.upper.max()) <= logits - 1
            assert bool((axis.lower[1:] >= axis.lower[:-1]).all())
            assert bool(((axis.weight >= 0) & (axis.weight <= 1)).all())
            assert torch.equal(axis.complement, 1 - axis.weight)


@pytest.mark.parametrize('variant', available_models())
def test_every_model_maps_its_logits_to_its_input_as_its_own_resize(variant: str) -> None:
    # A frame whose longer side is the input size sits in the input unscaled: the
    # interpolated logits at its pixels are the model's own full-resolution output there.
    torch.manual_seed(0)
    stride = max(model_spec(variant).output_strides)
    model = build_model(variant, num_classes=3, output_stride=stride).eval()
    size = 67
    frame = (size, 45)
    batch = torch.zeros(1, 3, size, size)
    batch[..., :45] = torch.randn(1, 3, size, 45)
    with torch.inference_mode():
        full = model(batch)[0]
        logits = LogitsOnly(model)(batch)[0]
    assert logits.shape[-1] < size
    rows, columns = _sampling(frame, size, logits, logits_resize(model))
    reference = dense_reference(logits, rows, columns)
    y = torch.arange(frame[0])[:, None]
    x = torch.arange(frame[1])[None, :]
    values = reference.values(y, x, torch.arange(3)[:, None, None])
    expected = full[:, :frame[0], :frame[1]]
    assert torch.allclose(values, expected, atol=1e-4 * max(1.0, float(expected.abs().max())))


def test_a_module_without_forward_logits_runs_at_its_input_resolution() -> None:
    # Not a registered model: its output is taken as logits at the input's resolution,
    # which the exact labels interpolate one to one.
    plain = torch.nn.Conv2d(3, 5, 3, padding=1).eval()
    batch = torch.randn(1, 3, 33, 33)
    with torch.inference_mode():
        logits = LogitsOnly(plain)(batch)[0]
        assert torch.equal(logits, plain(batch)[0])
    assert logits_resize(plain) == 'half_pixel'
    rows, columns = _sampling((33, 33), 33, logits, logits_resize(plain))
    labels = exact_labels(logits, rows, columns).labels
    assert torch.equal(labels.long(), logits.argmax(0))


def test_logits_only_keeps_the_models_output_hooks() -> None:
    model = build_model('deeplabv3_mobilenetv2', num_classes=4, output_stride=16).eval()
    quantize_activations(model, {'': (0.5, 128)})
    with torch.inference_mode():
        logits = LogitsOnly(model)(torch.randn(1, 3, 65, 65))
    assert torch.equal(logits, (logits / 0.5).round() * 0.5)


@needs_cuda
@pytest.mark.parametrize('resize', RESIZE_MODES)
def test_labels_and_confidence_on_cuda_equal_the_dense_reference(
        resize: str) -> None:  # pragma: no cover
    cuda = torch.device('cuda')
    for frame in ((1, 1), (37, 500), (480, 640), (1080, 1920), (2160, 3840)):
        logits = _logits(151, 97, 97, seed=frame[1], device=cuda).half()
        assert_exact(logits, *_sampling(frame, 385, logits, resize))
        place = placement_for(frame[0], frame[1], 385)
        region = (place.height, place.width)
        assert_confidence_close(top_probability_image(logits, frame, region, 385, resize),
                                reference_confidence(logits, frame, region, 385, resize))
