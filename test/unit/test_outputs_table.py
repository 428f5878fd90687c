"""The published-topic tables of the docs list exactly the node's outputs table."""

from __future__ import annotations

from pathlib import Path
import re

import pytest

from sensor_msgs.msg import CompressedImage, Image

from deeplab_ros.ros.outputs import (
    AUTOWARE, COMPRESSED_TWIN, ON_SUBSCRIPTION, OUTPUT_BY_NAME, OUTPUTS, outputs_for,
    WITH_DEPTH)

ROOT = Path(__file__).resolve().parents[2]


def _rows(path: Path, heading: str | None = None) -> dict[str, list[str]]:
    """``{topic: cells}`` of the table rows naming ``segmentation/...`` topics.

    With ``heading``, only the section under that heading is read. A row may name several
    topics (``segmentation/color``, ``segmentation/overlay``).
    """
    text = path.read_text()
    if heading is not None:
        text = text.split(f'\n{heading}\n', 1)[1].split('\n#', 1)[0]
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith('| `segmentation/'):
            continue
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        for topic in re.findall(r'`(segmentation/[a-z0-9_/]+)`', cells[0]):
            assert topic not in rows, f'{path.name}: {topic} listed twice'
            rows[topic] = cells
    return rows


@pytest.mark.parametrize('path, heading', [
    (ROOT / 'docs' / 'node.md', '## Published topics'),
    (ROOT / 'README.md', None),
])
def test_docs_list_every_output_with_its_type_and_when(
        path: Path, heading: str | None) -> None:
    rows = _rows(path, heading)
    assert set(rows) == {output.topic for output in OUTPUTS}, path.name
    for output in OUTPUTS:
        kind, when = rows[output.topic][1], rows[output.topic][-1 if heading is None else 3]
        assert kind.startswith(output.type_name), (output.name, kind)
        assert ('subscribed' in when) == (output.when in ON_SUBSCRIPTION), \
            (output.name, when)
        assert ('depth' in when) == (output.when == WITH_DEPTH), (output.name, when)
        assert ('autoware_mask' in when) == (output.when == AUTOWARE), (output.name, when)
        assert ('latched' in kind or 'transient local' in rows[output.topic][2]) == \
            output.latched, output.name


def test_depth_outputs_only_with_depth_and_autoware_s_mask_only_in_its_mode() -> None:
    names = {output.name for output in OUTPUTS}
    assert names - {output.name for output in outputs_for(False)} == \
        {'points', 'detections_3d', 'mask_rle'}
    assert names - {output.name for output in outputs_for(True)} == {'mask_rle'}
    assert names - {output.name for output in outputs_for(False, True)} == \
        {'points', 'detections_3d'}
    assert outputs_for(True, True) == OUTPUTS


def test_compressed_twins_follow_image_transport_s_naming() -> None:
    twins = [output for output in OUTPUTS if output.compresses]
    assert {twin.compresses: twin.codec for twin in twins} == {
        'labels': 'png', 'color': 'jpeg', 'overlay': 'jpeg', 'regions': 'png'}
    for twin in twins:
        base = OUTPUT_BY_NAME[twin.compresses]
        assert base.message_type is Image and not base.compresses
        assert twin.message_type is CompressedImage and twin.when in ON_SUBSCRIPTION
        assert twin.topic == base.topic + '/compressed'
        assert COMPRESSED_TWIN[base.name] is twin
