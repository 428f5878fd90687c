"""The inference device setting: parsed without the hardware, resolved against it.

``parse_device`` is what a setting check can call anywhere (the node's parameter table, the
tools' options); ``resolve_device`` is what running a model needs: a ``torch.device`` that
exists on this machine.
"""

from __future__ import annotations

import re

import torch

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError


class DeviceUnavailableError(ConfigurationError):
    """The requested inference device does not exist on this machine."""


_DEVICE_SPEC = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def parse_device(spec: str = 'auto') -> str:
    """Normalise the device setting without looking at the hardware.

    The result is ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'``; '' means ``'auto'``.

    Raises:
        InvalidSettingError: ``spec`` names no device.
    """
    text = (spec or 'auto').strip().lower()
    if not _DEVICE_SPEC.match(text):
        raise InvalidSettingError(f'Unknown device {spec!r}: use auto, cpu, cuda or cuda:N.',
                                  setting='device')
    return text


def resolve_device(spec: str = 'auto') -> torch.device:
    """``'auto'`` (CUDA if present, else CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Raises:
        InvalidSettingError: ``spec`` names no device.
        DeviceUnavailableError: the device does not exist on this machine.
    """
    text = parse_device(spec)
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if text == 'cpu':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f'device {spec!r} was requested but CUDA is not available on this machine '
            f'(torch {torch.__version__}, CUDA build {torch.version.cuda or "none"}); '
            'use device "auto" or "cpu".', setting='device')
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f'device {spec!r} does not exist: this machine has '
                                     f'{torch.cuda.device_count()} CUDA device(s).',
                                     setting='device')
    return device
