"""The segmenter needs only torch and numpy: OpenCV, PyYAML and torchvision stay optional.

A CUDA machine with nothing but torch and numpy runs the GPU check from its bundle
(``make gpu-check-bundle``); the segmenter's imports must allow it. Without OpenCV the CPU
resizes the labels with torch, as CUDA does.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

import numpy as np
import pytest

from deeplab_ros.core import Segmenter
from deeplab_ros.core.evaluation.datasets import read_rgb
from deeplab_ros.core.inference import postprocess
from deeplab_ros.core.weights.pretrained import resolve_weights
from support.minimal_python import minimal_python

ROOT = Path(__file__).resolve().parents[2]
VOC_MODEL = 'pretrained:deeplabv3_mnv2_dm05_float'
ABSENT = ('cv2', 'yaml', 'PIL', 'torchvision', 'onnx', 'onnxruntime', 'rclpy')

CHILD = '''
import sys
import numpy as np
from deeplab_ros.core import build_model, Segmenter
from deeplab_ros.core.errors import InvalidSettingError
segmenter = Segmenter.from_checkpoint(sys.argv[1], device='cpu')
np.save(sys.argv[3], segmenter.segment(np.load(sys.argv[2])).labels)
print(segmenter.backend, [name for name in {absent!r} if name in sys.modules])
try:
    build_model('lraspp_mobilenetv3_large')
except InvalidSettingError as error:
    print(error.setting, error)
'''


def test_the_segmenter_runs_with_only_torch_and_numpy(
        tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = resolve_weights(VOC_MODEL)
    # An odd size: the labels are resized from the network's resolution (OpenCV's job here).
    frame = read_rgb(shared / 'data/photos/pets.jpg')[:401, :377]
    np.save(tmp_path / 'frame.npy', frame)
    command, env = minimal_python(tmp_path / 'site')
    env['PYTHONPATH'] = f'{ROOT}{os.pathsep}{env["PYTHONPATH"]}'
    completed = subprocess.run(
        [*command, '-c', CHILD.format(absent=ABSENT), str(path), str(tmp_path / 'frame.npy'),
         str(tmp_path / 'labels.npy')], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    used, refusal = completed.stdout.splitlines()
    assert used == 'torch []'  # the backend, and the absent packages that were imported
    # torchvision's variants are listed, and explained when built without it.
    assert refusal.startswith("variant model variant 'lraspp_mobilenetv3_large' needs "
                              'torchvision, which is not installed')
    without_opencv = np.load(tmp_path / 'labels.npy')
    segmenter = Segmenter.from_checkpoint(path, device='cpu', backend='torch')
    labels = segmenter.segment(frame).labels
    assert len(np.unique(labels)) > 1 and (without_opencv == labels).mean() > 0.99
    monkeypatch.setattr(postprocess, 'cv2', None)
    np.testing.assert_array_equal(without_opencv, segmenter.segment(frame).labels)


def test_the_minimal_python_cannot_import_opencv(tmp_path: Path) -> None:
    command, env = minimal_python(tmp_path / 'site')
    completed = subprocess.run([*command, '-c', 'import cv2'], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0 and 'cv2' in completed.stderr
