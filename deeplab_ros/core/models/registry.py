"""Registry of segmentation model variants, built by name."""

from __future__ import annotations

from dataclasses import dataclass
import inspect
from typing import Any, Callable

import torch

from deeplab_ros.core.errors import InvalidSettingError

ModelBuilder = Callable[..., torch.nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: its builder and the output strides it supports."""

    name: str
    builder: ModelBuilder
    output_strides: tuple[int, ...]
    description: str = ''


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, output_strides: tuple[int, ...] = (8, 16),
                   description: str = '') -> Callable[[ModelBuilder], ModelBuilder]:
    """Register ``builder(*, num_classes, output_stride, **options)`` under ``name``."""
    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY and _REGISTRY[name].builder is not builder:
            raise ValueError(f'Model variant {name!r} is registered twice.')
        _REGISTRY[name] = ModelSpec(name, builder, tuple(output_strides),
                                    description or (builder.__doc__ or '').strip().split('\n')[0])
        return builder
    return decorator


def model_spec(name: str) -> ModelSpec:
    """Return the spec of the registered variant ``name``.

    Raises:
        InvalidSettingError: ``name`` is not registered; the message lists the variants.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidSettingError(f'Unknown model variant {name!r}. Available: '
                                  f'{", ".join(available_models())}.',
                                  setting='variant') from None


def build_model(name: str, *, num_classes: int = 21, output_stride: int = 16,
                **options: Any) -> torch.nn.Module:
    """Build a registered variant with freshly initialised weights.

    Args:
        name: A registered variant, see :func:`available_models`.
        num_classes: Number of output classes.
        output_stride: Ratio of input to feature resolution (8 or 16 for most variants).
        **options: Variant-specific options (e.g. ``depth_multiplier``).
    """
    spec = model_spec(name)
    if num_classes < 1:
        raise InvalidSettingError(f'num_classes must be positive, got {num_classes}.',
                                  setting='num_classes')
    if output_stride not in spec.output_strides:
        choices = ' or '.join(str(stride) for stride in spec.output_strides)
        raise InvalidSettingError(
            f'output_stride {output_stride} not supported by {name!r} (choose {choices}).',
            setting='output_stride')
    try:
        inspect.signature(spec.builder).bind(num_classes=num_classes,
                                             output_stride=output_stride, **options)
    except TypeError as error:
        raise InvalidSettingError(f'{name!r} does not take the options {sorted(options)}: '
                                  f'{error}', setting='model_options') from None
    try:
        return spec.builder(num_classes=num_classes, output_stride=output_stride, **options)
    except ValueError as error:  # a builder refuses an option value (e.g. depth_multiplier)
        raise InvalidSettingError(f'{name!r}: {error}', setting='model_options') from error


def available_models() -> tuple[str, ...]:
    """Names of the registered variants, sorted."""
    return tuple(sorted(_REGISTRY))
