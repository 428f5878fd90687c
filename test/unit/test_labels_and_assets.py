"""Label sets, palettes, colour-mask decoding and shared-asset lookup."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from deeplab_ros.core.errors import InvalidSettingError
from deeplab_ros.core.labels import (
    ADE20K_CLASS_NAMES, cityscapes_labels, decode_color_mask, LABEL_SETS, label_set_for,
    label_set_names, LabelFileError, load_label_file, resolve_labels, voc_labels)
from deeplab_ros.core.weights import locations


def test_voc_palette_matches_the_dataset_colours() -> None:
    labels = voc_labels()
    assert len(labels) == 21
    assert labels.class_names[15] == 'person'
    assert labels.palette[15] == (192, 128, 128)
    assert labels.palette[1] == (128, 0, 0)
    assert labels.palette_lut().shape == (256, 3)


def test_cityscapes_has_19_train_classes() -> None:
    labels = cityscapes_labels()
    assert len(labels) == 19 and labels.class_names[13] == 'car'


@pytest.mark.parametrize('name', sorted(LABEL_SETS))
def test_class_names_published_in_label_info_are_unique(name: str) -> None:
    names = resolve_labels(name).class_names
    duplicates = sorted({item for item in names if names.count(item) > 1})
    assert not duplicates, f'{name}: {duplicates}'


def test_ade20k_names_are_whole_names() -> None:
    assert len(ADE20K_CLASS_NAMES) == 150
    assert ADE20K_CLASS_NAMES[58] == 'screen door' and ADE20K_CLASS_NAMES[130] == 'screen'
    assert {'traffic light', 'coffee table', 'chest of drawers', 'crt screen'} \
        <= set(ADE20K_CLASS_NAMES)


def test_a_class_count_names_at_most_one_built_in_label_set() -> None:
    counts = {name: len(factory()) for name, factory in LABEL_SETS.items()}
    assert len(set(counts.values())) == len(counts)
    for name, count in counts.items():
        found = label_set_for(count)
        assert found is not None and found.name == name
        assert resolve_labels(name.upper()).name == name
    assert label_set_for(7) is None
    assert all(repr(name) in label_set_names() for name in LABEL_SETS)


def test_decode_voc_target_marks_border_as_ignore(shared: Path) -> None:
    bgr = cv2.imread(str(shared / 'data/voc_val/0_target.png'), cv2.IMREAD_COLOR)
    ids = decode_color_mask(np.ascontiguousarray(bgr[..., ::-1]), voc_labels())
    values = set(np.unique(ids).tolist())
    assert 255 in values and 0 in values
    assert values - {255} <= set(range(21))
    # The border colour and only it maps to ignore.
    border = np.all(bgr[..., ::-1] == (224, 224, 192), axis=-1)
    assert np.array_equal(ids == 255, border)


def test_colorize_round_trips_through_decode() -> None:
    labels = voc_labels()
    ids = np.random.default_rng(0).integers(0, 21, size=(7, 9), dtype=np.uint8)
    assert np.array_equal(decode_color_mask(labels.colorize(ids), labels), ids)


def test_custom_label_file(tmp_path: Path) -> None:
    path = tmp_path / 'mine.yaml'
    path.write_text('names: [background, gripper, box]\ncolors: [[0,0,0],[255,0,0],[0,0,255]]\n')
    labels = resolve_labels(str(path))
    assert labels.class_names == ('background', 'gripper', 'box')
    assert labels.palette[2] == (0, 0, 255)
    path.write_text('names: [a, b]\n')
    assert len(load_label_file(path).palette) == 2  # VOC colours by default


@pytest.mark.parametrize('content, problem', [
    ('- just\n- a list\n', 'names'),
    ('names: [a, b]\ncolors: [[1, 2, 3]]\n', 'colours'),
    ('names: [a]\ncolors: [[300, 0, 0]]\n', '0..255'),
    ('names: [a\n', 'not valid YAML'),
    ('names: [box, gripper, Box]\n', "more than one class 'box'"),
])
def test_bad_label_files_say_what_is_wrong(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / 'bad.yaml'
    path.write_text(content)
    with pytest.raises(LabelFileError, match=problem):
        load_label_file(path)
    with pytest.raises(LabelFileError, match='not found'):
        load_label_file(tmp_path / 'absent.yaml')


def test_missing_shared_asset_names_the_place_it_looked(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(locations.SHARED_ENV, str(tmp_path / 'nowhere'))
    with pytest.raises(locations.MissingAssetError) as raised:
        locations.shared_path('weights/deeplabv3_257_mv_gpu.tflite',
                              hint='The TFLite models are Google\'s public DeepLab releases.')
    message = str(raised.value)
    assert str(tmp_path / 'nowhere' / 'weights') in message
    assert locations.SHARED_ENV in message and 'Google' in message


def test_cache_dir_is_outside_the_repository(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(locations.CACHE_ENV, str(tmp_path / 'cache'))
    assert locations.cache_dir() == tmp_path / 'cache' and (tmp_path / 'cache').is_dir()


def test_checkpoints_with_first_word_ade20k_names_read_with_the_whole_names() -> None:
    """Converted caches once stored ADE20K names cut to a word ('traffic', 'screen' twice);
    they stay valid (same weights) and are read with the whole, unique names."""
    from deeplab_ros.core.labels import ade20k32_labels, ade20k_labels, upgrade_class_names
    from deeplab_ros.core.weights.checkpoint import CheckpointMetadata

    for labels in (ade20k_labels(), ade20k32_labels()):
        whole = labels.class_names
        cut = tuple(name.split()[0] for name in whole)  # (the first 31 are single words)
        assert upgrade_class_names(cut) == whole
        stored = CheckpointMetadata('deeplabv3plus_mobilenetv2_tf', len(whole),
                                    class_names=cut).to_dict()
        assert CheckpointMetadata.from_dict(stored).class_names == whole
    assert ade20k_labels().class_names[137] == 'traffic light'
    assert len(set(name.split()[0] for name in ade20k_labels().class_names)) < 151
    # Any other list is left as it is, a custom one that happens to share names included.
    custom = ('other', 'traffic', 'screen')
    assert upgrade_class_names(custom) == custom
    assert upgrade_class_names(voc_labels().class_names) == voc_labels().class_names


def test_label_sets_with_a_name_twice_are_refused_naming_the_duplicates() -> None:
    from deeplab_ros.core.labels import labels_from_names

    with pytest.raises(LabelFileError, match="'screen', 'car'; class names must be unique"):
        labels_from_names(['other', 'screen', 'car', 'screen', 'tree', 'Car', 'screen'])
    # Names that differ only in case would make a class setting ambiguous.
    with pytest.raises(LabelFileError, match="more than one class 'Road'"):
        labels_from_names(['Road', 'road'])


def test_cached_checkpoints_with_two_screen_classes_still_load(tmp_path: Path) -> None:
    """An ADE20K cache converted when two classes were both 'screen' (first words of 'screen
    door' and 'screen') reads with the whole names: its label set builds and is unique."""
    import torch

    from deeplab_ros.core.labels import ade20k_labels, labels_from_names
    from deeplab_ros.core.weights.checkpoint import CheckpointMetadata, read_checkpoint

    whole = ade20k_labels()
    cut = [name.split()[0] for name in whole.class_names]
    assert cut.count('screen') == 2
    with pytest.raises(LabelFileError, match="'screen'"):
        labels_from_names(cut)
    stored = CheckpointMetadata('deeplabv3plus_mobilenetv2_tf', len(cut), class_names=tuple(cut),
                                palette=whole.palette).to_dict()
    path = tmp_path / 'deeplabv3plus_mnv2_ade20k.pt'
    torch.save({'model_state': {'weight': torch.zeros(1)}, 'metadata': stored}, path)
    _, metadata = read_checkpoint(path)
    assert metadata is not None
    labels = metadata.label_set()
    assert labels.class_names == whole.class_names and labels.palette == whole.palette
    assert labels.class_ids(['screen door', 'screen'], setting='s') == [59, 131]


def test_class_ids_by_name_or_id_and_unknown_names_refused_with_close_matches() -> None:
    labels = cityscapes_labels()
    assert labels.class_ids(['Road', '11', ' traffic light ', ''], setting='s') == [0, 11, 6]
    with pytest.raises(InvalidSettingError) as raised:
        labels.class_ids(['road', 'trafic light'], setting='points_classes')
    message = str(raised.value)
    assert raised.value.setting == 'points_classes'
    assert message.startswith("points_classes: the model has no class 'trafic light' "
                              "(close matches: 'traffic light'")
    with pytest.raises(InvalidSettingError, match="no class '19'; its 19 classes have ids 0-18"):
        labels.class_ids(['19'], setting='s')
    with pytest.raises(InvalidSettingError, match=r"no class 'xyzzy'; its"):  # nothing close
        labels.class_ids(['xyzzy'], setting='s')
