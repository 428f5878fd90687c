"""Converted TFLite models reproduce Google's interpreter; pretrained checkpoints are cached."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deeplab_ros.core.weights.checkpoint import read_checkpoint
from deeplab_ros.core.weights.convert import convert_tflite, TFLiteConversionError
from deeplab_ros.core.weights.locations import MissingAssetError, SHARED_ENV
from deeplab_ros.core.weights.pretrained import (
    available_pretrained, DEFAULT_PRETRAINED, PRETRAINED, pretrained_checkpoint)


Interpreter = pytest.importorskip('ai_edge_litert.interpreter').Interpreter
PHOTOS = ('pets.jpg', 'basketball1.png', 'cat.bmp', 'grace_hopper.bmp')


def _input(shared: Path, name: str, size: int) -> np.ndarray:
    image = cv2.imread(str(shared / 'data/photos' / name))[..., ::-1]
    return np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR))


def test_float_model_reproduces_the_tflite_interpreter(shared: Path) -> None:
    path = shared / 'weights/deeplabv3_257_mv_gpu.tflite'
    model, metadata = convert_tflite(path)
    assert metadata.output_stride == 8 and metadata.model_options == {'depth_multiplier': 0.5}
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for name in PHOTOS:
        x = _input(shared, name, 257).astype(np.float32) / 127.5 - 1.0
        interpreter.set_tensor(interpreter.get_input_details()[0]['index'], x[None])
        interpreter.invoke()
        expected = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])[0]
        with torch.inference_mode():
            ours = model(torch.from_numpy(x).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - expected).max() <= 1e-4, name
        assert np.array_equal(ours.argmax(-1), expected.argmax(-1)), name


@pytest.mark.parametrize('file, minimum', [('deeplabv3_mnv2_pascal_quant.tflite', 0.98),
                                           ('deeplabv3_mnv2_dm05_pascal_quant.tflite', 0.97)])
def test_dequantized_models_agree_with_the_uint8_interpreter(shared: Path, file: str,
                                                             minimum: float) -> None:
    path = shared / 'weights' / file
    model, metadata = convert_tflite(path)
    assert metadata.output_stride == 16
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for name in PHOTOS[:2]:
        pixels = _input(shared, name, 513)
        interpreter.set_tensor(interpreter.get_input_details()[0]['index'], pixels[None])
        interpreter.invoke()
        expected = interpreter.get_tensor(interpreter.get_output_details()[0]['index'])[0]
        x = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with torch.inference_mode():
            ours = model(x)[0].argmax(0).numpy()
        assert (ours == expected).mean() >= minimum, name


def test_pretrained_checkpoints_carry_metadata(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv('DEEPLAB_ROS_CACHE', str(tmp_path))
    path = pretrained_checkpoint('deeplabv3_mnv2_dm05_dequant')
    assert path.parent == tmp_path
    state, metadata = read_checkpoint(path)
    assert metadata is not None and metadata.variant == 'deeplabv3_mobilenetv2'
    assert metadata.class_names[15] == 'person'
    # The uint8 input holds (pixel - 128) / 128: mean = std = 128 / 255 for RGB in [0, 1].
    assert metadata.mean == metadata.std == pytest.approx((128 / 255,) * 3)
    assert pretrained_checkpoint('deeplabv3_mnv2_dm05_dequant') == path  # cached
    path.write_bytes(b'garbage')
    assert read_checkpoint(pretrained_checkpoint('deeplabv3_mnv2_dm05_dequant'))[1]
    assert {"deeplabv3_mnv2_dm05_float", "deeplabv3plus_mnv2_ade20k",
            "deeplabv3plus_mnv2_ade20k32_dequant"} <= set(available_pretrained())


def test_missing_shared_weights_say_where_and_how(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(SHARED_ENV, str(tmp_path))
    monkeypatch.setenv('DEEPLAB_ROS_CACHE', str(tmp_path / 'cache'))
    with pytest.raises(MissingAssetError, match=str(tmp_path / 'weights')) as raised:
        pretrained_checkpoint(allow_download=False)
    assert PRETRAINED[DEFAULT_PRETRAINED].url in str(raised.value)  # where to get it


def test_a_file_that_is_not_tflite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / 'x.tflite'
    path.write_bytes(b'not a flatbuffer at all' * 10)
    with pytest.raises(TFLiteConversionError, match='x.tflite'):
        convert_tflite(path)
