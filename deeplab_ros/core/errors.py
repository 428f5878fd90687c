"""The two ways the package refuses to work, and the exceptions of each.

Every failure the package raises on purpose is one of two kinds, so a caller catches one base
and reports its message:

- :class:`ConfigurationError`: this configuration cannot work (weights, labels, device,
  backend, dataset, export, a setting's value, a bag to make or read). Nothing is gained by
  retrying it unchanged: the node's ``configure`` fails with the message, a console tool exits
  with it.
- :class:`InputError`: this one input (an image, its depth, its intrinsics) cannot be used.
  The node counts it, reports it (throttled) and carries on with the next input.

Anything else (``ValueError``, ``TypeError``, ``RuntimeError`` ...) is a bug, or a failure
nobody anticipated, and is left to propagate with its traceback. Messages say what is wrong in
terms of the setting, never a command-line flag: the caller adds that context (a console tool
knows its ``--weights``; the node knows its ``weights`` parameter).

The specific classes live beside the code that raises them (``CheckpointError`` in
``checkpoint``, ``FrameError`` in ``preprocess`` ...) and derive from one of these bases.
"""

from __future__ import annotations


class DeeplabRosError(Exception):
    """Base of every failure this package raises on purpose."""


class ConfigurationError(DeeplabRosError):
    """This configuration cannot work; the message says what to change.

    Attributes:
        setting: The setting at fault (``'weights'``, ``'device'``, ``'input_size'`` ...) when
            one is, else ``''``. Callers name it in their own terms (a flag, a parameter).
    """

    def __init__(self, message: str, *, setting: str = '') -> None:
        super().__init__(message)
        self.setting = setting


class InvalidSettingError(ConfigurationError):
    """A setting's value is not one the package understands.

    For example an unknown device, backend, upsampling mode, model variant or pretrained name,
    or an input size that is too small.
    """


class InputError(DeeplabRosError):
    """This input (a frame, its depth image, its camera intrinsics) cannot be used."""
