"""Class names and colour palettes: PASCAL VOC, Cityscapes, ADE20K and custom YAML files.

A custom label file is YAML::

    names: [background, person, car]
    colors: [[0, 0, 0], [220, 20, 60], [0, 0, 142]]   # optional; VOC palette by default
    ignore_index: 255                                   # optional
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, cast, Iterable

import numpy as np

from deeplab_ros.core.errors import ConfigurationError, InvalidSettingError

VOC_CLASS_NAMES: tuple[str, ...] = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
    'sheep', 'sofa', 'train', 'tvmonitor',
)

CITYSCAPES_CLASS_NAMES: tuple[str, ...] = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
    'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
    'motorcycle', 'bicycle',
)

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

#: The 150 ADE20K SceneParsing classes, ids 1..150: objectInfo150 order, the first
#: comma-separated name of each (the short list of mmsegmentation's ADE20K dataset; unique).
ADE20K_CLASS_NAMES: tuple[str, ...] = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane',
    'grass', 'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant',
    'curtain', 'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror',
    'rug', 'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp',
    'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard', 'chest of drawers',
    'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand',
    'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway',
    'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book',
    'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer',
    'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light',
    'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
    'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman',
    'bottle', 'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt',
    'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel', 'basket',
    'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen',
    'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan',
    'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator',
    'glass', 'clock', 'flag',
)

#: ADE20K ids whose name was once stored cut to its first word ('traffic' for 'traffic light',
#: and so on): checkpoints converted then carry these, and are read with the whole names.
_ADE20K_FIRST_WORD_NAMES: dict[int, str] = {
    45: 'chest', 57: 'pool', 59: 'screen', 65: 'coffee', 74: 'kitchen', 76: 'swivel',
    79: 'arcade', 90: 'television', 92: 'dirt', 106: 'conveyer', 110: 'swimming', 124: 'trade',
    137: 'traffic', 142: 'crt', 145: 'bulletin',
}


def upgrade_class_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Whole ADE20K class names for a list written with the first-word ones, else ``names``.

    Only a list that is exactly the ADE20K (151) or ADE20K-32 class list of those checkpoints
    is changed; any other list is returned as it is.
    """
    whole = (ADE20K_OTHER, *ADE20K_CLASS_NAMES)[:len(names)]
    if len(names) not in (len(ADE20K_CLASS_NAMES) + 1, ADE20K32_CLASSES + 1):
        return names
    cut = tuple(_ADE20K_FIRST_WORD_NAMES.get(index, name) for index, name in enumerate(whole))
    return whole if names == cut else names


#: Name of id 0 in ADE20K models: pixels of none of the classes (never trained, ignored).
ADE20K_OTHER = 'other'

#: Classes of the MLPerf ADE20K-32 model: 'other' plus the first 31 ADE20K classes.
ADE20K32_CLASSES = 31

#: Colour of the "ignore" pixels in PASCAL VOC ground-truth masks (the object borders).
VOC_IGNORE_COLOR: tuple[int, int, int] = (224, 224, 192)


def voc_palette(count: int = 256) -> tuple[tuple[int, int, int], ...]:
    """Return the standard PASCAL VOC colour map (bit-interleaved), ``count`` entries."""
    colors = []
    for index in range(count):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colors.append((red, green, blue))
    return tuple(colors)


def close_matches(name: str, choices: Iterable[str]) -> str:
    """`` (close matches: 'a', 'b')`` to end an error message about ``name``; '' if none."""
    matches = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f' (close matches: {", ".join(repr(m) for m in matches)})' if matches else ''


def duplicate_names(names: Iterable[str]) -> list[str]:
    """The names that occur more than once in ``names``, ignoring case, in first-seen order."""
    seen: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for name in names:
        key = name.lower()
        if key in seen:
            duplicates.setdefault(key, seen[key])
        else:
            seen[key] = name
    return list(duplicates.values())


class LabelFileError(ConfigurationError):
    """A custom label file is missing or malformed."""


@dataclass(frozen=True)
class LabelSet:
    """Class names with one RGB colour each, plus the id that marks pixels to ignore.

    Raises:
        LabelFileError: No names, more than 255, not one colour per name, or a name that
            occurs twice (ignoring case). Lists read from older checkpoints go through
            :func:`upgrade_class_names` first (two ADE20K classes were once both ``screen``).
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if not self.class_names:
            raise LabelFileError(f'Label set {self.name!r} has no class names.')
        if len(self.class_names) > 255:
            raise LabelFileError(
                f'Label set {self.name!r} has {len(self.class_names)} classes; mono8 label '
                'images hold at most 255 classes.')
        if len(self.palette) != len(self.class_names):
            raise LabelFileError(
                f'Label set {self.name!r} has {len(self.class_names)} names but '
                f'{len(self.palette)} colours.')
        duplicates = duplicate_names(self.class_names)
        if duplicates:
            raise LabelFileError(
                f'Label set {self.name!r} names more than one class '
                f'{", ".join(repr(name) for name in duplicates)}; class names must be unique '
                '(ignoring case: settings name classes in any case).')

    def __len__(self) -> int:
        return len(self.class_names)

    def class_ids(self, items: Iterable[str], *, setting: str) -> list[int]:
        """Class ids of class names (any case) or decimal ids; blank items are skipped.

        Raises:
            InvalidSettingError: An item names no class of this set (the message lists the
                close matches); ``setting`` is the parameter it came from.
        """
        by_name = {name.lower(): index for index, name in enumerate(self.class_names)}
        ids: list[int] = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            if text.isdigit() and int(text) < len(self.class_names):
                ids.append(int(text))
            elif text.lower() in by_name:
                ids.append(by_name[text.lower()])
            else:
                raise InvalidSettingError(
                    f'{setting}: the model has no class {text!r}'
                    f'{close_matches(text, self.class_names)}; its {len(self.class_names)} '
                    f'classes have ids 0-{len(self.class_names) - 1}', setting=setting)
        return ids

    def palette_lut(self) -> np.ndarray:
        """Return a (256, 3) uint8 look-up table: class id -> RGB.

        Ids beyond the class list are black; the ignore id is VOC's off-white.
        """
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[: len(self.palette)] = np.asarray(self.palette, dtype=np.uint8)
        if 0 <= self.ignore_index < 256 and self.ignore_index >= len(self.palette):
            lut[self.ignore_index] = VOC_IGNORE_COLOR
        return lut

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Map an HxW uint8 label image to an HxWx3 RGB colour image."""
        if labels.dtype != np.uint8:
            raise TypeError(f'labels must be uint8, got {labels.dtype}')
        return self.palette_lut()[labels]

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML-able form (``names``, ``colors``, ``ignore_index``)."""
        return {'names': list(self.class_names),
                'colors': [list(color) for color in self.palette],
                'ignore_index': self.ignore_index}


def voc_labels() -> LabelSet:
    """The 21 PASCAL VOC classes with the VOC palette."""
    return LabelSet('voc', VOC_CLASS_NAMES, voc_palette(len(VOC_CLASS_NAMES)))


def cityscapes_labels() -> LabelSet:
    """The 19 Cityscapes training classes with the Cityscapes palette."""
    return LabelSet('cityscapes', CITYSCAPES_CLASS_NAMES, CITYSCAPES_PALETTE)


def ade20k_labels() -> LabelSet:
    """ADE20K: 'other' (id 0, ignored when scoring) and the 150 classes, VOC-style palette."""
    names = (ADE20K_OTHER, *ADE20K_CLASS_NAMES)
    return LabelSet('ade20k', names, voc_palette(len(names)), ignore_index=0)


def ade20k32_labels() -> LabelSet:
    """ADE20K-32 (MLPerf): 'other' (id 0) and ADE20K's first 31 classes (wall ... armchair)."""
    names = (ADE20K_OTHER, *ADE20K_CLASS_NAMES[:ADE20K32_CLASSES])
    return LabelSet('ade20k32', names, voc_palette(len(names)), ignore_index=0)


def labels_from_names(names: tuple[str, ...] | list[str], *, name: str = 'custom',
                      palette: Any = None, ignore_index: int = 255) -> LabelSet:
    """Build a label set from names, colouring with the VOC palette when none is given."""
    names = tuple(str(item) for item in names)
    if palette is None or len(palette) == 0:
        colors = voc_palette(max(len(names), 1))[: len(names)]
    else:
        # Three channels per colour are not checked here (the palette's users would fail).
        colors = cast(tuple[tuple[int, int, int], ...],
                      tuple(tuple(int(channel) for channel in color) for color in palette))
    return LabelSet(name, names, colors, ignore_index)


def load_label_file(path: str | Path) -> LabelSet:
    """Load a YAML label file (``names``, optional ``colors`` and ``ignore_index``)."""
    import yaml  # only label files need it: the segmenter runs with torch and numpy alone

    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f'Label file not found: {path}')
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise LabelFileError(f'Label file {path} is not valid YAML: {error}') from error
    if not isinstance(content, dict) or not isinstance(content.get('names'), list):
        raise LabelFileError(
            f'Label file {path} must be a mapping with a list "names" '
            '(and optionally "colors": [[r, g, b], ...] and "ignore_index").')
    colors = content.get('colors')
    if colors is not None:
        if (not isinstance(colors, list)
                or not all(isinstance(c, (list, tuple)) and len(c) == 3 for c in colors)):
            raise LabelFileError(f'Label file {path}: "colors" must be a list of [r, g, b].')
        if any(not 0 <= int(v) <= 255 for c in colors for v in c):
            raise LabelFileError(f'Label file {path}: colour values must be within 0..255.')
    return labels_from_names(content['names'], name=path.stem, palette=colors,
                             ignore_index=int(content.get('ignore_index', 255)))


#: The built-in label sets by name (what ``labels`` settings and ``--labels`` accept besides
#: a YAML file). Their class counts differ, so a class count names at most one of them.
LABEL_SETS: dict[str, Callable[[], LabelSet]] = {
    'voc': voc_labels,
    'cityscapes': cityscapes_labels,
    'ade20k': ade20k_labels,
    'ade20k32': ade20k32_labels,
}

#: Other spellings accepted for the built-in sets.
_LABEL_SET_ALIASES = {'pascal_voc': 'voc', 'pascal': 'voc', 'ade20k150': 'ade20k',
                      'ade20k_150': 'ade20k', 'ade20k_32': 'ade20k32'}


def label_set_names() -> str:
    """The built-in set names for help texts: ``"'voc', 'cityscapes', 'ade20k', 'ade20k32'"``."""
    return ', '.join(repr(name) for name in LABEL_SETS)


def label_set_for(num_classes: int) -> LabelSet | None:
    """The built-in label set with ``num_classes`` classes, or None when none has that many."""
    for factory in LABEL_SETS.values():
        labels = factory()
        if len(labels) == num_classes:
            return labels
    return None


def resolve_labels(spec: str) -> LabelSet:
    """Return the label set named by ``spec``: a name of :data:`LABEL_SETS` or a YAML path."""
    key = spec.strip().lower()
    key = _LABEL_SET_ALIASES.get(key, key)
    if key in LABEL_SETS:
        return LABEL_SETS[key]()
    return load_label_file(spec)


def decode_color_mask(rgb: np.ndarray, labels: LabelSet) -> np.ndarray:
    """Turn a palette-coloured RGB mask into class ids.

    Colours that match no class (VOC's off-white object borders, for instance) become
    ``labels.ignore_index``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'Expected an HxWx3 RGB mask, got shape {rgb.shape}')
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) \
        | rgb[..., 2].astype(np.int32)
    palette = np.asarray(labels.palette, dtype=np.int32)
    keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    order = np.argsort(keys)
    sorted_keys = keys[order]
    position = np.clip(np.searchsorted(sorted_keys, packed), 0, len(sorted_keys) - 1)
    matched = sorted_keys[position] == packed
    ids = np.where(matched, order[position], labels.ignore_index)
    return ids.astype(np.uint8)
