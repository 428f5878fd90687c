"""Autoware's run-length mask and class ontology, checked against ports of Autoware's own code.

The ports in ``support/autoware.py`` are line-by-line Python ports of Autoware's
``perception_utils/src/run_length_encoder.cpp`` (``runLengthEncoder`` and
``runLengthDecoder``), with the 5-byte packing of ``autoware_tensorrt_yolox``'s node (a uint8
value then a native int32 length, memcpy'd side by side). ``segmentation_pointcloud_fusion``
(``segmentation_pointcloud_fusion/node.cpp``) decodes a mask with ``runLengthDecoder(data,
height, width)`` and looks its values up in a 16-entry list (``node.hpp``).
"""

from __future__ import annotations

from pathlib import Path
import re

import cv2
import numpy as np
import pytest

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError
from deeplab_ros.core.interop.autoware import (
    AUTOWARE_CLASSES, autoware_lookup, DEFAULT_MAPPINGS, encode_runs, parse_overrides)
from deeplab_ros.core.labels import (
    ade20k32_labels, ade20k_labels, cityscapes_labels, labels_from_names, voc_labels)
from support.autoware import autoware_run_length_decoder, autoware_run_length_encoder

#: segmentation_pointcloud_fusion/node.hpp: filter_semantic_label_target_list_, in order.
FUSION_LABEL_LIST = ('UNKNOWN', 'BUILDING', 'WALL', 'OBSTACLE', 'TRAFFIC_LIGHT',
                     'TRAFFIC_SIGN', 'PERSON', 'VEHICLE', 'BIKE', 'ROAD', 'SIDEWALK',
                     'ROAD_PAINT', 'CURBSTONE', 'CROSSWALK', 'VEGETATION', 'SKY')


def _ade_annotations(shared: Path) -> list[np.ndarray]:
    return [cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            for path in sorted((shared / 'data' / 'ade20k').glob('*.png'))]


def test_a_small_mask_gives_autoware_bytes() -> None:
    mask = np.array([[1, 1, 2], [2, 2, 2]], np.uint8)
    assert encode_runs(mask) == bytes([1, 2, 0, 0, 0, 2, 4, 0, 0, 0])
    assert encode_runs(mask) == autoware_run_length_encoder(mask)


def test_real_label_images_round_trip_through_autowares_decoder(shared: Path) -> None:
    masks = _ade_annotations(shared)
    assert len(masks) == 3
    for mask in masks:
        encoded = encode_runs(mask)
        assert encoded == autoware_run_length_encoder(mask)
        assert len(encoded) % 5 == 0 and len(encoded) < mask.size
        assert np.array_equal(autoware_run_length_decoder(encoded, *mask.shape), mask)


def test_remapped_labels_decode_to_the_plain_label_image_remapped(shared: Path) -> None:
    table = autoware_lookup(ade20k_labels())
    for mask in _ade_annotations(shared):  # ADE20K ids 0..150, as the ADE20K model outputs
        expected = table[mask]
        decoded = autoware_run_length_decoder(encode_runs(table[mask]), *mask.shape)
        assert np.array_equal(decoded, expected)
        names = {AUTOWARE_CLASSES[v] for v in np.unique(decoded)}
        assert names <= set(AUTOWARE_CLASSES)


def test_the_ontology_is_the_fusion_nodes_list() -> None:
    assert AUTOWARE_CLASSES == FUSION_LABEL_LIST


@pytest.mark.parametrize('labels', [cityscapes_labels(), ade20k_labels(), ade20k32_labels()],
                         ids=lambda labels: labels.name)
def test_mappings_name_real_classes_and_emit_only_what_a_model_knows(labels) -> None:
    mapping = DEFAULT_MAPPINGS[labels.name]
    if labels.name != 'ade20k32':  # the 31-class set uses the ADE20K table's first classes
        assert set(mapping) <= set(labels.class_names), set(mapping) - set(labels.class_names)
    assert set(mapping.values()) <= set(AUTOWARE_CLASSES)
    table = autoware_lookup(labels)
    emitted = {AUTOWARE_CLASSES[v] for v in table[:len(labels.class_names)]}
    assert emitted == {mapping.get(name, 'UNKNOWN') for name in labels.class_names}
    assert not {'ROAD_PAINT', 'CURBSTONE', 'CROSSWALK'} & emitted, 'no model knows these'
    assert np.all(table[len(labels.class_names):] == 0)


def test_cityscapes_classes_map_as_documented() -> None:
    table = autoware_lookup(cityscapes_labels())
    names = cityscapes_labels().class_names
    mapped = {name: AUTOWARE_CLASSES[table[i]] for i, name in enumerate(names)}
    assert mapped['road'] == 'ROAD' and mapped['car'] == 'VEHICLE'
    assert mapped['traffic light'] == 'TRAFFIC_LIGHT' and mapped['bicycle'] == 'BIKE'
    assert 'UNKNOWN' not in mapped.values(), 'every Cityscapes class has a counterpart'


def test_overrides_apply_and_bad_ones_name_the_problem() -> None:
    overrides = parse_overrides(['fence=obstacle', 'terrain = ROAD'])
    assert overrides == {'fence': 'OBSTACLE', 'terrain': 'ROAD'}
    table = autoware_lookup(cityscapes_labels(), overrides)
    names = cityscapes_labels().class_names
    assert AUTOWARE_CLASSES[table[names.index('fence')]] == 'OBSTACLE'
    assert AUTOWARE_CLASSES[table[names.index('terrain')]] == 'ROAD'
    with pytest.raises(InvalidSettingError, match=r"no class 'sidewlk'.*'sidewalk'"):
        autoware_lookup(cityscapes_labels(), {'sidewlk': 'SIDEWALK'})
    with pytest.raises(InvalidSettingError, match=r"'VEHICEL' is not an Autoware class.*"
                                                  r"'VEHICLE'"):
        parse_overrides(['car=VEHICEL'])
    with pytest.raises(InvalidSettingError, match='not of the form'):
        parse_overrides(['car'])


def test_a_model_without_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'voc'.*no mapping to Autoware"):
        autoware_lookup(voc_labels())


def test_a_checkpoint_s_own_class_list_is_recognised_by_its_names() -> None:
    """A checkpoint's label set is named after its model, not its dataset."""
    own = labels_from_names(cityscapes_labels().class_names, name='deeplabv3_mobilenet_edgetpu')
    assert np.array_equal(autoware_lookup(own), autoware_lookup(cityscapes_labels()))
    renamed = labels_from_names(voc_labels().class_names, name='deeplabv3_mobilenetv2')
    with pytest.raises(ConfigurationError, match="'deeplabv3_mobilenetv2', 21 classes"):
        autoware_lookup(renamed)


def test_the_doc_s_mapping_tables_are_the_code_s() -> None:
    text = (Path(__file__).resolve().parents[2] / 'docs' / 'autoware.md').read_text()
    for label_set in ('cityscapes', 'ade20k'):
        section = text.split(f'\n### {label_set}\n', 1)[1].split('\n#', 1)[0]
        rows = re.findall(r'^\| `([^`]+)` \| ([A-Z_]+) \|$', section, re.MULTILINE)
        assert dict(rows) == DEFAULT_MAPPINGS[label_set], label_set
        assert len(rows) == len(DEFAULT_MAPPINGS[label_set]), label_set
    assert DEFAULT_MAPPINGS['ade20k32'] is DEFAULT_MAPPINGS['ade20k']
    for value, name in enumerate(AUTOWARE_CLASSES):
        assert f'{value} `{name}`' in text
