"""Parameters of the segmentation node: declarations, descriptions, ranges and validation.

Model parameters are read at ``configure``; a change while configured is accepted but only
takes effect at the next configure (the node logs that). Live parameters apply at once.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from deeplab_ros.core.backends import BACKENDS
from deeplab_ros.core.postprocess import UPSAMPLE_MODES

_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')
INPUT_TRANSPORTS = ('raw', 'compressed')


@dataclass(frozen=True)
class ParameterSpec:
    """One declared parameter."""

    name: str
    default: Any
    description: str
    live: bool = False
    minimum: float | None = None
    maximum: float | None = None
    type: int | None = None  # explicit ParameterType where the default cannot tell


SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec('weights', 'pretrained',
                  "Checkpoint: 'pretrained' (default model), 'pretrained:NAME' or a .pt path. "
                  'Read at configure.'),
    ParameterSpec('variant', '',
                  'Model variant for checkpoints without metadata (e.g. '
                  "deeplabv3plus_mobilenetv2); '' = from the checkpoint. Read at configure."),
    ParameterSpec('labels', '',
                  "Class names/palette: '' = the checkpoint's, 'voc', 'cityscapes' or a YAML "
                  'file. Read at configure.'),
    ParameterSpec('input_size', 0,
                  "Square network input side in pixels; 0 = the checkpoint's recommendation. "
                  'Read at configure.', minimum=0, maximum=4097),
    ParameterSpec('device', 'auto',
                  "Inference device: 'auto' (CUDA if present, else CPU), 'cpu', 'cuda', "
                  "'cuda:N'. Read at configure."),
    ParameterSpec('half', True, 'Float16 inference on CUDA (ignored on the CPU). Read at '
                  'configure.'),
    ParameterSpec('upsample', 'labels',
                  "How predictions return to the frame's resolution: 'labels' (arg-max, then "
                  "nearest resize; fast) or 'logits' (bilinear logits, then arg-max). Read at "
                  'configure.'),
    ParameterSpec('cameras', [],
                  'Camera names for several streams in one node: NAME/image -> '
                  'NAME/segmentation/...; empty = one stream on image. Read at configure.',
                  type=ParameterType.PARAMETER_STRING_ARRAY),
    ParameterSpec('target_rate', 0.0,
                  'Most frames per second to segment per camera; 0 = as fast as possible. Live.',
                  live=True, minimum=0.0, maximum=1000.0),
    ParameterSpec('overlay_alpha', 0.5,
                  'Opacity of the colour mask in segmentation/overlay. Live.', live=True,
                  minimum=0.0, maximum=1.0),
    ParameterSpec('presence_min_fraction', 0.001,
                  'Smallest pixel fraction for a class to be listed in segmentation/classes. '
                  'Live.', live=True, minimum=0.0, maximum=1.0),
    ParameterSpec('publish_color', True, 'Publish segmentation/color (when subscribed). Live.',
                  live=True),
    ParameterSpec('publish_overlay', True,
                  'Publish segmentation/overlay (when subscribed). Live.', live=True),
    ParameterSpec('publish_confidence', False,
                  'Publish segmentation/confidence (when subscribed). Live.', live=True),
    ParameterSpec('diagnostics_period', 1.0,
                  'Seconds between /diagnostics reports; 0 = off. Read at configure.',
                  minimum=0.0, maximum=3600.0),
    ParameterSpec('backend', 'auto',
                  "Network forward: 'auto' (onnxruntime on the CPU when installed, else "
                  "torch), 'torch' or 'onnxruntime'. Read at configure."),
    ParameterSpec('input_transport', 'raw',
                  "'raw' (sensor_msgs/Image on image) or 'compressed' "
                  '(sensor_msgs/CompressedImage, JPEG or PNG, on <image>/compressed). Read at '
                  'configure.'),
    ParameterSpec('use_depth', False,
                  'Subscribe to depth (sensor_msgs/Image 16UC1 mm or 32FC1 m, registered to '
                  'the colour camera) for segmentation/points and segmentation/detections_3d. '
                  'Read at configure.'),
    ParameterSpec('depth_queue_size', 10,
                  'Depth images kept for matching to colour frames (the oldest go first). '
                  'Read at configure.', minimum=1, maximum=1000),
    ParameterSpec('depth_tolerance', 0.02,
                  'Largest stamp difference in seconds between a colour frame and its depth '
                  'image (the nearest is used). Live.', live=True, minimum=0.0, maximum=10.0),
    ParameterSpec('points_dense', False,
                  'segmentation/points without invalid points (height 1) instead of organised '
                  'with NaN. Live.', live=True),
    ParameterSpec('points_stride', 1,
                  'Use every N-th depth row and column for segmentation/points. Live.',
                  live=True, minimum=1, maximum=64),
    ParameterSpec('points_classes', [],
                  'Classes (names or ids) in segmentation/points; others are NaN (organised) '
                  'or left out (dense); empty = all. Live.', live=True,
                  type=ParameterType.PARAMETER_STRING_ARRAY),
    ParameterSpec('detections_min_area_fraction', 0.001,
                  'Smallest region, as a fraction of the frame, in segmentation/detections. '
                  'Live.', live=True, minimum=0.0, maximum=1.0),
    ParameterSpec('detections_ignore_classes', ['0'],
                  'Classes (names or ids) that never form detections, e.g. 0 (background or '
                  'other in the pretrained models), wall, floor. Live.', live=True,
                  type=ParameterType.PARAMETER_STRING_ARRAY),
    ParameterSpec('detections_box_percentile', 5.0,
                  '3D boxes span the P-th to (100-P)-th percentile of a region\'s points on '
                  'each axis (0 = full extent). Live.', live=True, minimum=0.0, maximum=49.0),
)

SPEC_BY_NAME = {spec.name: spec for spec in SPECS}
MODEL_PARAMETERS = tuple(spec.name for spec in SPECS if not spec.live)


def declare_parameters(node: Node) -> None:
    """Declare every parameter with its description and range."""
    for spec in SPECS:
        descriptor = ParameterDescriptor(description=spec.description)
        if spec.minimum is not None:
            if isinstance(spec.default, int) and not isinstance(spec.default, bool):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.minimum),
                                                         to_value=int(spec.maximum), step=1)]
            else:
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
        if spec.type == ParameterType.PARAMETER_STRING_ARRAY:
            descriptor.type = spec.type
            node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, descriptor)
            if not node.has_parameter(spec.name) or _uninitialized(node, spec.name):
                # rclpy cannot infer a type from an empty list: set the typed default.
                node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY,
                                               list(spec.default))])
        else:
            node.declare_parameter(spec.name, spec.default, descriptor)


def _uninitialized(node: Node, name: str) -> bool:
    try:
        node.get_parameter(name)
    except ParameterUninitializedException:
        return True
    return False


def value(node: Node, name: str) -> Any:
    """Current value (the default where an array parameter was left unset)."""
    try:
        current = node.get_parameter(name).value
    except ParameterUninitializedException:
        current = None
    return SPEC_BY_NAME[name].default if current is None else current


def validate(parameter: Parameter) -> str:
    """Reason to reject a new value, or '' when it is acceptable (ranges are checked by ROS)."""
    name, new = parameter.name, parameter.value
    if name == 'device' and not _DEVICE.match(str(new).strip().lower()):
        return f"device must be auto, cpu, cuda or cuda:N, got {new!r}"
    if name == 'backend' and new not in BACKENDS:
        return f'backend must be one of {", ".join(BACKENDS)}, got {new!r}'
    if name == 'upsample' and new not in UPSAMPLE_MODES:
        return f'upsample must be one of {", ".join(UPSAMPLE_MODES)}, got {new!r}'
    if name == 'input_size' and new not in (0,) and int(new) < 17:
        return f'input_size must be 0 (checkpoint default) or at least 17, got {new}'
    if name == 'input_transport' and new not in INPUT_TRANSPORTS:
        return f'input_transport must be one of {", ".join(INPUT_TRANSPORTS)}, got {new!r}'
    if name == 'cameras' and new is not None:
        names = list(new)
        if len(set(names)) != len(names):
            return 'cameras must not repeat a name'
        bad = [item for item in names if not re.match(r'^[A-Za-z][A-Za-z0-9_/]*$', item)]
        if bad:
            return f'camera names must be valid topic names: {bad}'
    return ''


@dataclass
class LiveSettings:
    """The parameters that apply without a reconfigure."""

    target_rate: float = 0.0
    overlay_alpha: float = 0.5
    presence_min_fraction: float = 0.001
    publish_color: bool = True
    publish_overlay: bool = True
    publish_confidence: bool = False
    depth_tolerance: float = 0.02
    points_dense: bool = False
    points_stride: int = 1
    points_classes: tuple[str, ...] = ()
    detections_min_area_fraction: float = 0.001
    detections_ignore_classes: tuple[str, ...] = ('0',)
    detections_box_percentile: float = 5.0

    @classmethod
    def from_node(cls, node: Node) -> 'LiveSettings':
        """Read the current values from ``node``."""
        return cls(**{name: value(node, name) for name in cls.__dataclass_fields__})
