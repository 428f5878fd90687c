"""Google's MobileNetV3-Large Cityscapes DeepLab: interpreter parity, any size, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.labels import resolve_labels
from deeplab_ros.core.models import build_model
from deeplab_ros.core.models.lraspp_tf import IMAGE_POOLING_KERNEL, LiteRASPPHead
from deeplab_ros.core.weights.checkpoint import CheckpointError, device_defaults, load_model
from deeplab_ros.core.weights.convert import (
    convert_mobilenetv3_tflite, convert_tflite, TFLiteConversionError)
from deeplab_ros.core.weights.convert.tflite_graph import read_tflite
from deeplab_ros.core.weights.pretrained import pretrained_checkpoint
from support.checkpoints import assert_loaded_only_as_its_variant


Interpreter = pytest.importorskip('ai_edge_litert.interpreter').Interpreter
NAME = 'lraspp_mnv3_cityscapes'
MNV3 = 'lite-model_deeplabv3-mobilenetv3-cityscapes_1_default_2.tflite'
VARIANT = 'lraspp_mobilenetv3_large_tf'
#: The export size (height, width).
EXPORT = (1025, 2049)


def _street_frame(shared: Path, index: int = 0) -> np.ndarray:
    """An RGB frame of the shared highway footage."""
    capture = cv2.VideoCapture(str(shared / 'data/video/traffic_frames.mp4'))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok, 'cannot decode data/video/traffic_frames.mp4'
    return np.ascontiguousarray(frame[..., ::-1])


@pytest.fixture(scope='module')
def converted() -> tuple[torch.nn.Module, object]:
    """The cached pretrained checkpoint (converted once, as users get it)."""
    return load_model(pretrained_checkpoint(NAME))


def test_mobilenetv3_matches_the_interpreter_at_the_export_size(shared: Path,
                                                                converted: tuple) -> None:
    # The interpreter runs the int8 1x1 convs on dynamically quantized activations, ours the
    # same weights dequantized in float32: the float-only layers agree to 2e-5 and the
    # logits differ by quantization noise (max 0.41 on logits of -12..21 on this frame).
    model, metadata = converted
    assert metadata.variant == VARIANT and metadata.output_stride == 32
    pixels = cv2.resize(_street_frame(shared), EXPORT[::-1], interpolation=cv2.INTER_LINEAR)
    x = pixels.astype(np.float32) / 127.5 - 1
    interpreter = Interpreter(model_path=str(shared / 'weights' / MNV3))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]['index'], x[None])
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])[0]
    with torch.inference_mode():
        ours = model(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape == (*EXPORT, 19)
    difference = float(np.abs(ours - expected).max())
    agreement = float((ours.argmax(-1) == expected.argmax(-1)).mean())
    print(f'max |logit diff| {difference:.3f}, arg-max agreement {agreement:.5f}')
    assert difference < 1.0
    assert float(np.abs(ours - expected).mean()) < 0.06  # 0.036 measured
    assert agreement >= 0.99
    present = {metadata.class_names[i] for i in np.unique(expected.argmax(-1))}
    assert {'road', 'car'} <= present


def test_image_pooling_is_global_up_to_the_kernel_and_local_beyond() -> None:
    torch.manual_seed(0)
    head = LiteRASPPHead(8, 4, num_classes=3).eval()
    low_level = torch.randn(1, 4, 40, 70)
    for size, grid in (((17, 17), (1, 1)), ((25, 40), (1, 4)), ((33, 65), (3, 9))):
        features = torch.randn(1, 8, *size)
        pooled = []
        hook = head.image_pooling.register_forward_hook(
            lambda module, args, output: pooled.append(args[0]))
        with torch.inference_mode():
            logits = head(features, low_level)
        hook.remove()
        assert logits.shape == (1, 3, 40, 70)
        assert tuple(pooled[0].shape[-2:]) == grid, size
        if size[0] <= IMAGE_POOLING_KERNEL[0] and size[1] <= IMAGE_POOLING_KERNEL[1]:
            assert torch.allclose(pooled[0], features.mean(dim=(2, 3), keepdim=True),
                                  atol=1e-6)


@pytest.mark.parametrize('size', [(97, 131), (33, 33), (513, 513), (770, 770)])
def test_any_input_size(size: tuple[int, int]) -> None:
    model = build_model(VARIANT, num_classes=19, output_stride=32).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, *size)).shape == (1, 19, *size)


def test_only_output_stride_32_and_the_right_architecture(shared: Path, tmp_path: Path,
                                                          converted: tuple) -> None:
    with pytest.raises(InvalidSettingError,
                       match=f"output_stride 16 not supported by '{VARIANT}'"):
        build_model(VARIANT, output_stride=16)
    path = pretrained_checkpoint(NAME)
    with pytest.raises(CheckpointError, match=f"'{VARIANT}' runs at output stride 32, not 8"):
        load_model(path, output_stride=8)
    with pytest.raises(TFLiteConversionError, match='output stride 32 only, not 16'):
        convert_mobilenetv3_tflite(shared / 'weights' / MNV3, output_stride=16)
    assert_loaded_only_as_its_variant(path, VARIANT, 'deeplabv3plus_mobilenetv2_tf', tmp_path)
    assert_loaded_only_as_its_variant(path, VARIANT, 'deeplabv3_mobilenetv2', tmp_path)


def test_wrong_source_files_are_named(shared: Path) -> None:
    with pytest.raises(TFLiteConversionError, match='not the expected model: its sha256'):
        convert_mobilenetv3_tflite(shared / 'weights' / MNV3, expected_sha256='0' * 64)
    with pytest.raises(TFLiteConversionError, match='no HARD_SWISH op, not a MobileNetV3'):
        convert_mobilenetv3_tflite(shared / 'weights/deeplabv3_257_mv_gpu.tflite')


def test_generic_converter_hands_mobilenetv3_files_over(shared: Path,
                                                        converted: tuple) -> None:
    model, metadata = convert_tflite(shared / 'weights' / MNV3, input_size=513)
    assert metadata.variant == VARIANT and metadata.input_size == 513
    reference = converted[0].state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in model.state_dict().items())


def test_generic_converter_reads_the_file_once(shared: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from deeplab_ros.core.weights import convert
    from deeplab_ros.core.weights.convert import deeplab_mobilenetv3

    reads: list[Path] = []

    def counted(path: Path) -> object:
        reads.append(path)
        return read_tflite(path)

    for module in (convert, deeplab_mobilenetv3):
        monkeypatch.setattr(module, 'read_tflite', counted)
    convert_tflite(shared / 'weights' / MNV3)
    assert reads == [shared / 'weights' / MNV3]


@pytest.mark.parametrize('converter', [convert_tflite, convert_mobilenetv3_tflite])
def test_quantized_activations_are_refused_naming_the_setting(
        shared: Path, converter: Callable[..., object]) -> None:
    # The graph computes in float (int8 weights only): there is nothing to emulate.
    with pytest.raises(TFLiteConversionError, match='quantized_activations') as raised:
        converter(shared / 'weights' / MNV3, quantized_activations=True)
    assert raised.value.setting == 'quantized_activations'


def test_labels_and_run_settings(converted: tuple) -> None:
    _, metadata = converted
    assert metadata.label_set().class_names == resolve_labels('cityscapes').class_names
    assert metadata.class_names[0] == 'road' and metadata.class_names[13] == 'car'
    assert device_defaults(metadata, torch.device('cpu')) == (769, None)
    assert device_defaults(metadata, torch.device('cuda', 0)) == (1025, None)


def test_segmenter_labels_a_street_frame_at_the_recommended_size(shared: Path) -> None:
    segmenter = Segmenter.from_checkpoint(f'pretrained:{NAME}', device='cpu', backend='torch')
    assert segmenter.input_size == 769
    frame = _street_frame(shared, 10)
    result = segmenter.segment(frame)
    assert result.labels.shape == frame.shape[:2]
    fractions = {segmenter.metadata.class_names[index]: value
                 for index, value in result.class_fractions.items()}
    assert fractions['road'] > 0.2 and fractions['car'] > 0.2, fractions
    segmenter.close()


def test_eval_without_data_says_there_are_no_labelled_cityscapes_images(
        capsys: pytest.CaptureFixture) -> None:
    from deeplab_ros.tools import evaluate

    assert evaluate.main(['--weights', f'pretrained:{NAME}', '--device', 'cpu',
                          '--backend', 'torch']) == 1
    assert 'no labelled Cityscapes images' in capsys.readouterr().err
