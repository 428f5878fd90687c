"""The node's segmenter, built from its configure-time parameters."""

from __future__ import annotations

from typing import Any

from deeplab_ros.core.inference.device import resolve_device
from deeplab_ros.core.inference.segmenter import Segmenter
from deeplab_ros.core.labels import resolve_labels
from deeplab_ros.ros import parameters as params


def segmenter_from_parameters(node: Any) -> Segmenter:
    """Check the model parameters of ``node``, build the segmenter and warm it up.

    Raises:
        ConfigurationError: A parameter the model cannot work with (the error names it).
    """
    value = lambda name: params.value(node, name)  # noqa: E731
    logger = node.get_logger()
    device_spec = str(value('device'))
    params.check_model_parameters(node)
    device = resolve_device(device_spec)
    if device_spec == 'auto' and device.type == 'cpu':
        logger.info('device auto: CUDA is not available, running on the CPU')
    labels = resolve_labels(value('labels')) if value('labels') else None
    segmenter = Segmenter.from_checkpoint(
        value('weights'), device=device, input_size=value('input_size') or None,
        half=bool(value('half')), labels=labels, variant=value('variant') or None,
        upsample=value('upsample'), backend=str(value('backend')),
        batch_size=max(1, len(value('cameras') or [])))
    if segmenter.backend_note:
        logger.warning(segmenter.backend_note)
    segmenter.warmup()
    return segmenter
