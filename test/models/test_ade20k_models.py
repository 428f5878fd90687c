"""Google's MobileNetV2 DeepLabV3+ ADE20K models: interpreter parity, strides, labels, eval."""

from __future__ import annotations

from pathlib import Path
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.labels import resolve_labels
from deeplab_ros.core.weights.checkpoint import (
    CheckpointError, CheckpointMetadata, device_defaults, load_model, read_checkpoint)
from deeplab_ros.core.weights.convert import convert_tflite, TFLiteConversionError
from deeplab_ros.core.weights.pretrained import pretrained_checkpoint
from support.checkpoints import assert_loaded_only_as_its_variant


Interpreter = pytest.importorskip('ai_edge_litert.interpreter').Interpreter
REPO = Path(__file__).resolve().parents[2]
ADE151 = 'lite-model_deeplabv3-mobilenetv2-ade20k_1_default_1.tflite'
ADE32 = 'deeplabv3_mnv2_ade20k_uint8.tflite'
VALIDATION = ('ADE_val_00000001', 'ADE_val_00000002', 'ADE_val_00000003')


def _resized(shared: Path, name: str, side: int) -> np.ndarray:
    image = cv2.imread(str(shared / 'data/ade20k' / f'{name}.jpg'))[..., ::-1]
    return np.ascontiguousarray(cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR))


def _interpreter(path: Path, pixels: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    feed = pixels if details['dtype'] == np.uint8 else pixels.astype(np.float32) / 127.5 - 1
    interpreter.set_tensor(details['index'], feed[None])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]['index'])[0]


def _ours(model: torch.nn.Module, pixels: np.ndarray,
          metadata: CheckpointMetadata) -> np.ndarray:
    mean, std = (torch.tensor(value).reshape(1, 3, 1, 1)
                 for value in (metadata.mean, metadata.std))
    x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - mean) / std
    with torch.inference_mode():
        return model(x)[0].numpy()


@pytest.fixture(scope='module')
def ade151_export_setting() -> torch.nn.Module:
    """The cached pretrained ADE20K checkpoint at its export stride (8)."""
    model, metadata = load_model(pretrained_checkpoint('deeplabv3plus_mnv2_ade20k'),
                                 output_stride=8)
    assert metadata.variant == 'deeplabv3plus_mobilenetv2_tf' and metadata.num_classes == 151
    return model


def test_ade20k_deeplabv3plus_matches_the_interpreter(shared: Path,
                                                      ade151_export_setting) -> None:
    # The interpreter runs the int8 weights with dynamically quantized activations, ours
    # the same weights dequantized in float32: logits differ by quantization noise (max
    # 0.39 on logits of -14..26 measured on ADE_val_00000001), arg-max >= 99 %.
    pixels = _resized(shared, VALIDATION[0], 513)
    expected = _interpreter(shared / 'weights' / ADE151, pixels)
    metadata = read_checkpoint(pretrained_checkpoint('deeplabv3plus_mnv2_ade20k'))[1]
    ours = _ours(ade151_export_setting, pixels, metadata).transpose(1, 2, 0)
    assert ours.shape == expected.shape == (513, 513, 151)
    print(f'max |logit diff| {np.abs(ours - expected).max():.3f}')
    assert np.abs(ours - expected).max() < 1.0
    assert (ours.argmax(-1) == expected.argmax(-1)).mean() >= 0.99


def test_ade20k32_uint8_model_agrees_with_the_interpreter(shared: Path) -> None:
    # The float port disagrees with the interpreter mostly where the interpreter's uint8
    # logits tie or differ by one step (0.144); emulating the graph's activation quantization
    # (quantized_activations=True) reproduces those roundings and ties.
    model, metadata = load_model(pretrained_checkpoint('deeplabv3plus_mnv2_ade20k32_dequant'))
    assert metadata.num_classes == 32 and metadata.output_stride == 16
    assert metadata.model_options == {'resize': 'tf_legacy'}
    emulating, emulating_metadata = convert_tflite(shared / 'weights' / ADE32,
                                                   quantized_activations=True)
    assert len(emulating_metadata.model_options['activation_quantization']) > 50
    agreement, emulated = [], []
    for name in VALIDATION:
        pixels = _resized(shared, name, 512)
        expected = _interpreter(shared / 'weights' / ADE32, pixels)
        agreement.append((_ours(model, pixels, metadata).argmax(0) == expected).mean())
        emulated.append((_ours(emulating, pixels, emulating_metadata).argmax(0)
                         == expected).mean())
    print('arg-max agreement per image', [round(float(value), 4) for value in agreement],
          'with quantized activations', [round(float(value), 4) for value in emulated])
    assert min(agreement) >= 0.97 and np.mean(agreement) >= 0.98
    assert min(emulated) >= 0.98


def test_output_stride_is_chosen_at_load(ade151_export_setting) -> None:
    path = pretrained_checkpoint('deeplabv3plus_mnv2_ade20k')
    coarse, metadata = load_model(path, output_stride=16)
    assert metadata.output_stride == 16
    x = torch.randn(1, 3, 100, 131)
    with torch.inference_mode():
        fine_logits, coarse_logits = ade151_export_setting(x), coarse(x)
    assert fine_logits.shape == coarse_logits.shape == (1, 151, 100, 131)
    assert not torch.allclose(fine_logits, coarse_logits)
    with pytest.raises(CheckpointError, match='runs at output stride 8 or 16, not 32'):
        load_model(path, output_stride=32)


def test_wrong_files_and_architectures_are_named(shared: Path, tmp_path: Path) -> None:
    with pytest.raises(TFLiteConversionError, match='not the expected model: its sha256'):
        convert_tflite(shared / 'weights' / ADE32, expected_sha256='0' * 64)
    path = pretrained_checkpoint('deeplabv3plus_mnv2_ade20k')
    assert_loaded_only_as_its_variant(path, 'deeplabv3plus_mobilenetv2_tf',
                                      'deeplabv3_mobilenetv2', tmp_path)
    assert_loaded_only_as_its_variant(path, 'deeplabv3plus_mobilenetv2_tf',
                                      'deeplabv3plus_mobilenetv2', tmp_path)


def test_ade20k_label_sets() -> None:
    ade = resolve_labels('ade20k')
    assert len(ade) == 151 and ade.class_names[0] == 'other'
    assert [ade.class_names[i] for i in (7, 12, 13, 16, 21)] == [
        'road', 'sidewalk', 'person', 'table', 'car']
    ade32 = resolve_labels('ade20k32')
    assert len(ade32) == 32 and ade32.class_names[31] == 'armchair'
    assert len(set(ade.palette)) == 151


def test_eval_reads_ade20k_pairs_in_both_layouts(shared: Path, tmp_path: Path) -> None:
    nested = tmp_path / 'nested'
    for folder in ('images', 'annotations'):
        (nested / folder).mkdir(parents=True)
    shutil.copy(shared / 'data/ade20k/ADE_val_00000003.jpg', nested / 'images')
    shutil.copy(shared / 'data/ade20k/ADE_val_00000003.png', nested / 'annotations')
    results = []
    for data in (shared / 'data/ade20k', nested):
        completed = subprocess.run(
            [sys.executable, '-m', 'deeplab_ros.tools.evaluate', '--device', 'cpu',
             '--weights', 'pretrained:deeplabv3plus_mnv2_ade20k', '--data', str(data),
             '--input-size', '321', '--output-stride', '16'],
            cwd=REPO, capture_output=True, text=True, timeout=600)
        assert completed.returncode == 0, completed.stderr
        assert 'output stride: 16' in completed.stdout
        results.append({line.split(':')[0]: line for line in completed.stdout.splitlines()
                        if line.startswith('image ')})
    assert len(results[0]) == 3 and list(results[1]) == ['image ADE_val_00000003']
    assert results[1]['image ADE_val_00000003'] == results[0]['image ADE_val_00000003']
    assert 'road' in results[0]['image ADE_val_00000001']


def test_run_settings_follow_the_device() -> None:
    path = pretrained_checkpoint('deeplabv3plus_mnv2_ade20k')
    _, metadata = load_model(path)
    assert device_defaults(metadata, torch.device('cpu')) == (385, None)
    assert metadata.output_stride == 16
    assert device_defaults(metadata, torch.device('cuda', 0)) == (513, 8)
    segmenter = Segmenter.from_checkpoint('pretrained', device='cpu')
    assert segmenter.input_size == 385 and segmenter.metadata.output_stride == 16
