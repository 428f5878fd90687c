"""The two ways to fail: every error the package raises on purpose is a ConfigurationError or
an InputError, core messages name settings (never command-line flags), and the console tools
report a failure in one line while a bug still ends in its traceback."""

from __future__ import annotations

import ast
from pathlib import Path
import re
from typing import Callable

import numpy as np
import pytest

from deeplab_ros.bagtools.message_definitions import MessageDefinitionError
from deeplab_ros.bagtools.sources import BagError, parse_size
from deeplab_ros.core.errors import (
    ConfigurationError, DeeplabRosError, InputError, InvalidSettingError)
from deeplab_ros.core.evaluation.datasets import DatasetError, open_dataset
from deeplab_ros.core.inference.backends import BackendUnavailableError, parse_backend
from deeplab_ros.core.inference.device import DeviceUnavailableError, parse_device
from deeplab_ros.core.inference.onnx_export import OnnxExportError
from deeplab_ros.core.inference.postprocess import parse_upsample
from deeplab_ros.core.inference.preprocess import check_frame, check_input_size, FrameError
from deeplab_ros.core.labels import LabelFileError, resolve_labels, voc_labels
from deeplab_ros.core.models import build_model
from deeplab_ros.core.spatial.geometry import IntrinsicsError, PinholeIntrinsics
from deeplab_ros.core.training.config import TrainConfig
from deeplab_ros.core.weights.checkpoint import CheckpointError, read_checkpoint
from deeplab_ros.core.weights.convert import TFLiteConversionError
from deeplab_ros.core.weights.download import DownloadError
from deeplab_ros.core.weights.locations import MissingAssetError
from deeplab_ros.core.weights.pretrained import resolve_weights
from deeplab_ros.ros.depth_input import DepthInputError
from deeplab_ros.ros.image_codec import decode_image, ImageDecodeError
from deeplab_ros.tools import export as export_tool
from deeplab_ros.tools import models as models_tool

ROOT = Path(__file__).resolve().parents[2]

CONFIGURATION_ERRORS = (
    MissingAssetError, CheckpointError, TFLiteConversionError, DeviceUnavailableError,
    OnnxExportError, DownloadError, LabelFileError, BackendUnavailableError, DatasetError,
    InvalidSettingError, BagError, MessageDefinitionError)
INPUT_ERRORS = (FrameError, IntrinsicsError, ImageDecodeError, DepthInputError)


def test_every_error_is_under_exactly_one_of_the_two_bases() -> None:
    """The catch sites rely on this: configure catches ConfigurationError, frames InputError."""
    for bases, other in ((CONFIGURATION_ERRORS, InputError), (INPUT_ERRORS, ConfigurationError)):
        base = InputError if other is ConfigurationError else ConfigurationError
        for error_class in bases:
            assert issubclass(error_class, base) and not issubclass(error_class, other), \
                error_class.__name__
            assert issubclass(error_class, DeeplabRosError)


@pytest.mark.parametrize('fails, base, setting', [
    (lambda _: parse_device('gpu7'), ConfigurationError, 'device'),
    (lambda _: parse_backend('tensorrt'), ConfigurationError, 'backend'),
    (lambda _: parse_upsample('bicubic'), ConfigurationError, 'upsample'),
    (lambda _: check_input_size(5), ConfigurationError, 'input_size'),
    (lambda tmp: resolve_weights(tmp / 'absent.pt'), ConfigurationError, 'weights'),
    (lambda _: resolve_weights('pretrained:no_such_model'), ConfigurationError, 'weights'),
    (lambda tmp: resolve_labels(str(tmp / 'absent.yaml')), ConfigurationError, ''),
    (lambda tmp: read_checkpoint(tmp / 'absent.pt'), ConfigurationError, ''),
    (lambda tmp: open_dataset(tmp / 'absent', voc_labels()), ConfigurationError, ''),
    (lambda _: TrainConfig(dataset='d', output_dir='o', lr=0.0), ConfigurationError, 'lr'),
    (lambda _: build_model('deeplabv3_mobilenetv2', depth_multiplier=0.7), ConfigurationError,
     'model_options'),
    (lambda _: build_model('deeplabv3_mobilenetv2', colour=1), ConfigurationError,
     'model_options'),
    (lambda _: parse_size('640'), ConfigurationError, ''),
    (lambda _: check_frame(np.zeros((4, 4), np.uint8)), InputError, ''),
    (lambda _: PinholeIntrinsics(0.0, 1.0, 1.0, 1.0, 4, 4), InputError, ''),
    (lambda _: decode_image('rgb8', 2, 2, 6, 0, bytes(3)), InputError, ''),
], ids=['device', 'backend', 'upsample', 'input_size', 'weights_file', 'pretrained_name',
        'labels', 'checkpoint', 'dataset', 'training', 'model_option_value',
        'model_option_name', 'bag_size', 'frame', 'intrinsics',
        'image'])
def test_real_failures_raise_their_kind_and_name_the_setting(
        fails: Callable[[Path], object], base: type, setting: str, tmp_path: Path) -> None:
    with pytest.raises(base) as raised:
        fails(tmp_path)
    assert str(raised.value)
    if setting:
        assert raised.value.setting == setting


def _raised_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string constant inside a ``raise`` statement (f-string parts too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    found.append((part.lineno, part.value))
    return found


def test_core_messages_name_no_command_line_flag() -> None:
    """The core speaks of settings; the tools add their own flags (``--weights``)."""
    flag = re.compile(r'(?<![\w-])--[a-z][a-z-]*')
    offending = []
    for path in sorted((ROOT / 'deeplab_ros' / 'core').rglob('*.py')):
        for line, text in _raised_strings(ast.parse(path.read_text())):
            if flag.search(text):
                offending.append(f'{path.relative_to(ROOT)}:{line}: {text!r}')
    assert not offending, '\n'.join(offending)
    # The scan finds flags where they are: the tools' own messages do name them.
    tool_strings = _raised_strings(ast.parse(
        (ROOT / 'deeplab_ros' / 'tools' / 'train.py').read_text()))
    assert any(flag.search(text) for _, text in tool_strings)


def test_a_tool_reports_a_configuration_error_in_one_line_with_its_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = export_tool.main(['--output', str(tmp_path / 'x.onnx'),
                               '--weights', 'pretrained:no_such_model'])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith('deeplab-ros-export: error: Unknown pretrained model')
    assert err.rstrip().endswith('(--weights)') and len(err.strip().splitlines()) == 1
    # The same error from a tool without a --weights option names no option.
    assert models_tool.main(['fetch', 'no_such_model', '--offline']) == 1
    err = capsys.readouterr().err
    assert 'Unknown pretrained model' in err and '--weights' not in err


def test_a_bug_in_a_tool_is_not_swallowed(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    import deeplab_ros.core.weights.pretrained as pretrained

    def broken(spec: str) -> Path:
        raise TypeError('a programming error')

    monkeypatch.setattr(pretrained, 'resolve_weights', broken)
    with pytest.raises(TypeError, match='a programming error'):
        export_tool.main(['--output', str(tmp_path / 'x.onnx')])
