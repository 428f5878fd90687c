"""Parameters of the segmentation node: one table (:data:`SPECS`) of every parameter.

Each row holds the name, default, description, range, whether the parameter is live and the
check of its value; the declarations, the validation of ``ros2 param set``, the
:class:`LiveSettings` fields and their defaults all come from the table, so a new parameter is
added in one place (plus its line in ``config/segment.yaml``, which a test compares with the
table). A check is the core's own parser of that setting (``parse_device``,
``parse_backend``, ``parse_upsample``, ``check_input_size``), so a rule exists once.

Model parameters are read at ``configure``; a change while configured is accepted but only
takes effect at the next configure (the node logs that). Live parameters apply at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
import re
from typing import Any, Callable

from rcl_interfaces.msg import (
    FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType)
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.inference.backends import BACKENDS, parse_backend
from deeplab_ros.core.inference.device import parse_device
from deeplab_ros.core.inference.postprocess import parse_upsample, UPSAMPLE_MODES
from deeplab_ros.core.inference.preprocess import check_input_size, MIN_INPUT_SIZE
from deeplab_ros.core.interop.autoware import parse_overrides
from deeplab_ros.core.labels import label_set_names

INPUT_TRANSPORTS = ('raw', 'compressed')
#: ``points_resolution``: segmentation/points at the depth image's or the label image's size.
POINTS_RESOLUTIONS = ('depth', 'mask')
_CAMERA_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_/]*$')


def _one_of(value: str, setting: str, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``, else InvalidSettingError naming ``setting``."""
    if value not in choices:
        raise InvalidSettingError(f'{setting} must be one of {", ".join(choices)}, got '
                                  f'{value!r}', setting=setting)
    return value


def parse_input_transport(value: str) -> str:
    """The ``input_transport`` setting, checked: one of :data:`INPUT_TRANSPORTS`."""
    return _one_of(value, 'input_transport', INPUT_TRANSPORTS)


def parse_points_resolution(value: str) -> str:
    """The ``points_resolution`` setting, checked: one of :data:`POINTS_RESOLUTIONS`."""
    return _one_of(value, 'points_resolution', POINTS_RESOLUTIONS)


def check_camera_names(names: Any) -> list[str]:
    """The ``cameras`` setting, checked: distinct names usable as topic namespaces."""
    names = list(names or [])
    if len(set(names)) != len(names):
        raise InvalidSettingError('cameras must not repeat a name', setting='cameras')
    bad = [item for item in names if not _CAMERA_NAME.match(item)]
    if bad:
        raise InvalidSettingError(f'camera names must be valid topic names: {bad}',
                                  setting='cameras')
    return names


def _checked_input_size(value: int) -> int:
    """0 (the checkpoint's recommendation) or a size the core accepts."""
    return check_input_size(value) if value else 0


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
    #: The accepted values of a string parameter with a closed set of them (documentation;
    #: ``check`` enforces them).
    choices: tuple[str, ...] = ()
    #: Raises :class:`ConfigurationError` for a value the node cannot use (None: any value
    #: of the parameter's type and range).
    check: Callable[[Any], Any] | None = None

    @property
    def python_type(self) -> Any:
        """The type of the value (string arrays as tuples of strings)."""
        if self.type == ParameterType.PARAMETER_STRING_ARRAY:
            return tuple[str, ...]
        return type(self.default)

    def frozen_default(self) -> Any:
        """The default as an immutable value (arrays as tuples)."""
        return tuple(self.default) if isinstance(self.default, list) else self.default


SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec('weights', 'pretrained',
                  "Checkpoint: 'pretrained' (default model), 'pretrained:NAME' or a .pt path. "
                  'Read at configure.'),
    ParameterSpec('variant', '',
                  'Model variant for checkpoints without metadata (e.g. '
                  "deeplabv3plus_mobilenetv2); '' = from the checkpoint. Read at configure."),
    ParameterSpec('labels', '',
                  f"Class names/palette: '' = the checkpoint's, {label_set_names()} or a YAML "
                  'file. Read at configure.'),
    ParameterSpec('input_size', 0,
                  f'Square network input side in pixels ({MIN_INPUT_SIZE} or more); 0 = the '
                  "checkpoint's recommendation. Read at configure.", minimum=0, maximum=4097,
                  check=_checked_input_size),
    ParameterSpec('device', 'auto',
                  "Inference device: 'auto' (CUDA if present, else CPU), 'cpu', 'cuda', "
                  "'cuda:N'. Read at configure.", check=parse_device),
    ParameterSpec('half', True, 'Float16 inference on CUDA (ignored on the CPU). Read at '
                  'configure.'),
    ParameterSpec('upsample', 'exact',
                  "How labels reach the frame's resolution: 'exact' (arg-max of the model's "
                  'bilinearly interpolated logits at every frame pixel, computed where needed) '
                  "or 'dense' (logits resized to the network input, arg-max, nearest resize; "
                  'for comparison). Read at configure.', check=parse_upsample,
                  choices=UPSAMPLE_MODES),
    ParameterSpec('cameras', [],
                  'Camera names for several streams in one node: NAME/image -> '
                  'NAME/segmentation/...; empty = one stream on image. Read at configure.',
                  type=ParameterType.PARAMETER_STRING_ARRAY, check=check_camera_names),
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
    ParameterSpec('publish_confidence', True,
                  'Publish segmentation/confidence (when subscribed). Live.', live=True),
    ParameterSpec('diagnostics_period', 1.0,
                  'Seconds between /diagnostics reports; 0 = off. Read at configure.',
                  minimum=0.0, maximum=3600.0),
    ParameterSpec('backend', 'auto',
                  "Network forward: 'auto' (onnxruntime on the CPU when installed, else "
                  "torch), 'torch' or 'onnxruntime'. Read at configure.", check=parse_backend,
                  choices=BACKENDS),
    ParameterSpec('input_transport', 'raw',
                  "'raw' (sensor_msgs/Image on image) or 'compressed' "
                  '(sensor_msgs/CompressedImage, JPEG or PNG, on <image>/compressed). Read at '
                  'configure.', check=parse_input_transport, choices=INPUT_TRANSPORTS),
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
    ParameterSpec('autoware_mask', False,
                  "Publish segmentation/mask_rle: Autoware's run-length class mask (mono8 "
                  "header, Autoware's 16 classes), for segmentation_pointcloud_fusion. Read at "
                  'configure.'),
    ParameterSpec('autoware_overrides', [],
                  "Changes to the model-class -> Autoware-class mapping of autoware_mask, "
                  "items 'class name=AUTOWARE_CLASS' (e.g. 'fence=OBSTACLE'). Read at "
                  'configure.', type=ParameterType.PARAMETER_STRING_ARRAY,
                  check=lambda items: parse_overrides(list(items or []))),
    ParameterSpec('points_resolution', 'depth',
                  "segmentation/points at the depth image's resolution ('depth') or one point "
                  "per label pixel, in the labels' row-major order ('mask': what Nav2's "
                  'semantic_segmentation_layer needs). Live.', live=True,
                  check=parse_points_resolution, choices=POINTS_RESOLUTIONS),
    ParameterSpec('points_class_id', False,
                  'Add a uint8 class_id field to segmentation/points: the Autoware class with '
                  'autoware_mask, else the class id (no extra bytes). Live.', live=True),
    ParameterSpec('points_probability', False,
                  'Add a float32 probability field (top-class probability) to '
                  'segmentation/points (point step 24 instead of 20). Live.', live=True),
    ParameterSpec('jpeg_quality', 95,
                  'JPEG quality (1-100) of segmentation/color/compressed and '
                  "segmentation/overlay/compressed; image_transport's default. Live.",
                  live=True, minimum=1, maximum=100),
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
    """Return the current value of ``name`` (the default where an array parameter is unset)."""
    try:
        current = node.get_parameter(name).value
    except ParameterUninitializedException:
        current = None
    return SPEC_BY_NAME[name].default if current is None else current


def validate(parameter: Parameter) -> str:
    """Reason to reject a new value, or '' when it is acceptable (ranges are checked by ROS)."""
    spec = SPEC_BY_NAME.get(parameter.name)
    if spec is None or spec.check is None:
        return ''
    try:
        spec.check(parameter.value)
    except ConfigurationError as error:
        return str(error)
    return ''


def check_model_parameters(node: Node) -> None:
    """Check every parameter read at configure.

    Values from a parameters file or the command line never went through :func:`validate`.

    Raises:
        InvalidSettingError: the first parameter whose value the node cannot use.
    """
    for spec in SPECS:
        if spec.check is not None and not spec.live:
            spec.check(value(node, spec.name))


def _from_node(cls: type, node: Node) -> Any:
    """Read the current values from ``node``."""
    return cls(**{name: value(node, name) for name in cls.__dataclass_fields__})


#: The parameters that apply without a reconfigure: one field per live row of :data:`SPECS`,
#: with its default; ``LiveSettings.from_node(node)`` reads the current values.
LiveSettings = make_dataclass(
    'LiveSettings',
    [(spec.name, spec.python_type, field(default=spec.frozen_default()))
     for spec in SPECS if spec.live],
    namespace={'from_node': classmethod(_from_node),
               '__doc__': 'The parameters that apply without a reconfigure (from SPECS).',
               '__module__': __name__})
