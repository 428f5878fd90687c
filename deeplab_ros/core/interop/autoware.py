"""Autoware's semantic mask: its 16-class driving ontology and its run-length format.

Autoware's camera segmentation (``autoware_tensorrt_yolox``, ``~/out/mask``) publishes a
``sensor_msgs/Image`` tagged ``mono8`` with the frame's ``height`` and ``width`` whose ``data``
is not pixels but run-length pairs: one uint8 class value followed by one native int32 run
length (little-endian on every platform Autoware runs on), runs in row-major order
(``perception_utils/src/run_length_encoder.cpp``, ``runLengthEncoder``; the node copies each
pair into 5 bytes in ``tensorrt_yolox_node.cpp``). ``segmentation_pointcloud_fusion`` decodes
it with ``runLengthDecoder(data, height, width)`` and indexes its
``filter_semantic_label_target`` list with the value, in the order of :data:`AUTOWARE_CLASSES`
(``segmentation_pointcloud_fusion/node.hpp``).

The model's classes are mapped onto that ontology by name (:data:`DEFAULT_MAPPINGS`, one table
per label set; classes without a counterpart become ``UNKNOWN``, and Autoware classes that no
model class maps to are never emitted). Overrides ``'class name=AUTOWARE_CLASS'`` adjust it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.labels import close_matches, LabelSet, resolve_labels

#: Autoware's semantic classes, indexed by the value written into the mask.
AUTOWARE_CLASSES: tuple[str, ...] = (
    'UNKNOWN', 'BUILDING', 'WALL', 'OBSTACLE', 'TRAFFIC_LIGHT', 'TRAFFIC_SIGN', 'PERSON',
    'VEHICLE', 'BIKE', 'ROAD', 'SIDEWALK', 'ROAD_PAINT', 'CURBSTONE', 'CROSSWALK', 'VEGETATION',
    'SKY',
)

#: Bytes of one run: a uint8 class value and a little-endian int32 length.
RUN_DTYPE = np.dtype([('value', 'u1'), ('length', '<i4')])

_CITYSCAPES = {
    'road': 'ROAD', 'sidewalk': 'SIDEWALK', 'building': 'BUILDING', 'wall': 'WALL',
    'fence': 'WALL', 'pole': 'OBSTACLE', 'traffic light': 'TRAFFIC_LIGHT',
    'traffic sign': 'TRAFFIC_SIGN', 'vegetation': 'VEGETATION', 'terrain': 'VEGETATION',
    'sky': 'SKY', 'person': 'PERSON', 'rider': 'PERSON', 'car': 'VEHICLE', 'truck': 'VEHICLE',
    'bus': 'VEHICLE', 'train': 'VEHICLE', 'motorcycle': 'BIKE', 'bicycle': 'BIKE',
}

_ADE20K = {
    'wall': 'WALL', 'fence': 'WALL', 'railing': 'WALL',
    'building': 'BUILDING', 'house': 'BUILDING', 'skyscraper': 'BUILDING', 'tower': 'BUILDING',
    'hovel': 'BUILDING',
    'sky': 'SKY',
    'tree': 'VEGETATION', 'grass': 'VEGETATION', 'plant': 'VEGETATION', 'palm': 'VEGETATION',
    'flower': 'VEGETATION',
    'road': 'ROAD', 'sidewalk': 'SIDEWALK', 'path': 'SIDEWALK',
    'person': 'PERSON',
    'car': 'VEHICLE', 'bus': 'VEHICLE', 'truck': 'VEHICLE', 'van': 'VEHICLE',
    'minibike': 'BIKE', 'bicycle': 'BIKE',
    'traffic light': 'TRAFFIC_LIGHT', 'signboard': 'TRAFFIC_SIGN',
    'pole': 'OBSTACLE', 'streetlight': 'OBSTACLE', 'barrel': 'OBSTACLE',
}

#: Model class name -> Autoware class, per label set (``LabelSet.name``). A label set not
#: listed here has no mapping: asking for the Autoware mask from such a model is refused.
DEFAULT_MAPPINGS: dict[str, dict[str, str]] = {
    'cityscapes': _CITYSCAPES,
    'ade20k': _ADE20K,
    'ade20k32': _ADE20K,  # the first 31 ADE20K classes: the entries for the others go unused
}


def default_mapping(label_set: LabelSet) -> dict[str, str] | None:
    """The :data:`DEFAULT_MAPPINGS` entry for a label set, or None when there is none.

    A label set is recognised by its name or, as a checkpoint's own class list is named after
    the model, by having exactly the class names of a mapped label set.
    """
    if label_set.name in DEFAULT_MAPPINGS:
        return DEFAULT_MAPPINGS[label_set.name]
    for name, mapping in DEFAULT_MAPPINGS.items():
        if tuple(label_set.class_names) == tuple(resolve_labels(name).class_names):
            return mapping
    return None


def parse_overrides(overrides: Iterable[str], setting: str = 'autoware_overrides'
                    ) -> dict[str, str]:
    """Parse ``'class name=AUTOWARE_CLASS'`` strings into a mapping (Autoware names checked)."""
    parsed: dict[str, str] = {}
    for item in overrides:
        name, separator, target = item.rpartition('=')
        name, target = name.strip(), target.strip().upper()
        if not separator or not name or not target:
            raise InvalidSettingError(
                f'{setting}: {item!r} is not of the form "class name=AUTOWARE_CLASS" '
                f'(e.g. "fence=OBSTACLE").', setting=setting)
        if target not in AUTOWARE_CLASSES:
            raise InvalidSettingError(
                f'{setting}: {target!r} is not an Autoware class'
                f'{close_matches(target, AUTOWARE_CLASSES)}; they are '
                f'{", ".join(AUTOWARE_CLASSES)}.', setting=setting)
        parsed[name] = target
    return parsed


def check_override_classes(label_set: LabelSet, overrides: Mapping[str, str], *,
                           setting: str = 'autoware_overrides') -> None:
    """Raise InvalidSettingError naming the first override class the model does not have."""
    names = label_set.class_names
    for name in overrides:
        if name not in names:
            raise InvalidSettingError(
                f'{setting}: the model has no class {name!r}{close_matches(name, names)}.',
                setting=setting)


def autoware_lookup(label_set: LabelSet, overrides: Mapping[str, str] | None = None, *,
                    setting: str = 'autoware_overrides') -> np.ndarray:
    """A 256-entry uint8 table: model class id -> Autoware class value.

    Args:
        label_set: The model's classes; they select the default mapping
            (:func:`default_mapping`).
        overrides: ``{model class name: Autoware class}`` applied on top (see
            :func:`parse_overrides`).
        setting: Named in errors.

    Raises:
        ConfigurationError: The label set has no mapping to Autoware's classes.
        InvalidSettingError: An override names a class the model does not have.
    """
    defaults = default_mapping(label_set)
    if defaults is None:
        raise ConfigurationError(
            f'The model\'s classes ({label_set.name!r}, {len(label_set.class_names)} classes) '
            f'have no mapping to Autoware\'s ontology; there is one for '
            f'{", ".join(sorted(DEFAULT_MAPPINGS))} models.', setting=setting)
    check_override_classes(label_set, overrides or {}, setting=setting)
    names = label_set.class_names
    mapping = {**defaults, **(overrides or {})}
    table = np.zeros(256, np.uint8)  # every unmapped id (and the ignore id) is UNKNOWN
    for class_id, name in enumerate(names):
        target = mapping.get(name)
        if target is not None:
            table[class_id] = AUTOWARE_CLASSES.index(target)
    return table


def encode_runs(mask: np.ndarray) -> bytes:
    """Autoware's run-length bytes of a uint8 class mask (row-major runs, 5 bytes each)."""
    flat = np.ascontiguousarray(mask, dtype=np.uint8).ravel()
    if flat.size == 0:
        return b''
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    runs = np.empty(starts.size, RUN_DTYPE)
    runs['value'] = flat[starts]
    runs['length'] = np.diff(np.concatenate((starts, [flat.size])))
    return runs.tobytes()
