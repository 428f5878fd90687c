"""Builders for the node's vision_msgs and diagnostic_msgs messages (its /diagnostics too)."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass

from deeplab_ros.core.labels import LabelSet
from deeplab_ros.streaming.statistics import BAD_INPUT_WINDOW_S, NodeStatistics


def classification(header: Header, fractions: Mapping[int, float], labels: LabelSet,
                   min_fraction: float) -> Classification:
    """One hypothesis per class present, largest first.

    ``class_id`` is the class's id as a decimal string: the value of its pixels in the labels
    image and the ``VisionClass.class_id`` of :func:`label_info`'s class map, where consumers
    look its name up (vision_msgs' convention). ``score`` is the fraction of the frame's pixels
    labelled with the class (0..1), not a detection confidence; classes under
    ``min_fraction`` are left out.
    """
    message = Classification(header=header)
    for index, fraction in sorted(fractions.items(), key=lambda item: -item[1]):
        if fraction >= min_fraction and fraction > 0.0 and index < len(labels):
            message.results.append(ObjectHypothesis(class_id=str(index), score=float(fraction)))
    return message


def label_info(header: Header, labels: LabelSet, threshold: float) -> LabelInfo:
    """The class map (id -> name) of the labels image and of :func:`classification`'s ids.

    ``threshold`` is the minimum pixel fraction for a class to be listed in the classes
    message (``presence_min_fraction``).
    """
    return LabelInfo(header=header, threshold=float(threshold),
                     class_map=[VisionClass(class_id=index, class_name=name)
                                for index, name in enumerate(labels.class_names)])


def diagnostic_array(header: Header, name: str, hardware_id: str, level: int, summary: str,
                     values: Mapping[str, object]) -> DiagnosticArray:
    """A DiagnosticArray with one status."""
    level = bytes(level) if isinstance(level, (bytes, bytearray)) else bytes([int(level)])
    status = DiagnosticStatus(level=level, name=name, message=summary,
                              hardware_id=hardware_id,
                              values=[KeyValue(key=key, value=str(value))
                                      for key, value in values.items()])
    return DiagnosticArray(header=header, status=[status])


def camera_info_for_frame(info: CameraInfo, header: Header, width: int,
                          height: int) -> CameraInfo | None:
    """Return a copy of ``info`` carrying the processed frame's header, or None.

    None when ``info`` describes another image size (its width/height set and different from
    the frame's).

    The received message is never modified: it may be used again for the next frame.
    """
    if (info.width or info.height) and (info.width, info.height) != (width, height):
        return None
    result = copy.deepcopy(info)
    result.header = header
    return result


def segmentation_diagnostics(header: Header, name: str, segmenter: Any,
                             stats: NodeStatistics, active: bool, silent: Sequence[str],
                             no_image_warn_s: float, cameras: str) -> DiagnosticArray:
    """The node's /diagnostics: WARN on recent bad inputs or silent cameras, else OK.

    ``silent`` names the active cameras without an image for over ``no_image_warn_s``; the
    values are the statistics' own plus what describes the model and the cameras.
    """
    problems = []
    recent_bad = stats.recent_bad_inputs.recent()
    if recent_bad:
        problems.append(f'{recent_bad} bad inputs in the last {BAD_INPUT_WINDOW_S:g} s')
    if silent:
        problems.append(f'no image for over {no_image_warn_s:g} s: {", ".join(silent)}')
    level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    summary = '; '.join(['active' if active else 'inactive', *problems])
    device = str(segmenter.device)
    values = stats.diagnostic_values()
    values.update({
        'device': device + (' fp16' if segmenter.half else ''),
        'model': segmenter.metadata.variant,
        'weights': segmenter.metadata.source,
        'input_size': segmenter.input_size,
        'cameras': cameras,
        'backend': segmenter.describe_backend(),
    })
    return diagnostic_array(header, name, device, level, summary, values)
