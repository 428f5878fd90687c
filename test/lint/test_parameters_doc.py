"""docs/parameters.md is generated from the node's parameter table and kept current.

The page is the parameter reference users read; it is written by ``make docs``
(``python -m deeplab_ros.tools.parameters_doc --output docs/parameters.md``) from
:data:`deeplab_ros.ros.parameters.SPECS`. A parameter added, renamed or re-described in the
table without regenerating the page fails here.
"""

from __future__ import annotations

from pathlib import Path

from deeplab_ros.ros.parameters import ParameterSpec, SPECS
from deeplab_ros.tools import parameters_doc

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / 'docs' / 'parameters.md'


def test_committed_parameter_reference_is_current() -> None:
    expected = parameters_doc.parameters_markdown()
    committed = PAGE.read_text() if PAGE.is_file() else ''
    assert committed == expected, (
        f'docs/parameters.md is stale (or missing): regenerate it with `{parameters_doc.COMMAND}` '
        f'({parameters_doc.MODULE_COMMAND}) and commit it')


def test_the_tool_writes_the_page(tmp_path: Path) -> None:
    output = tmp_path / 'parameters.md'
    assert parameters_doc.main(['--output', str(output)]) == 0
    assert output.read_text() == parameters_doc.parameters_markdown()


def test_every_parameter_has_one_row_with_its_type_default_and_range() -> None:
    rows = [line for line in parameters_doc.parameters_markdown().splitlines()
            if line.startswith('| `')]
    assert [row.split('`')[1] for row in rows] == [spec.name for spec in SPECS]
    by_name = dict(zip((spec.name for spec in SPECS), rows))
    assert by_name['input_size'].startswith('| `input_size` | integer | `0` | 0 to 4097 |')
    assert '| `auto`, `torch`, `onnxruntime` | configure |' in by_name['backend']
    assert by_name['detections_ignore_classes'].startswith(
        "| `detections_ignore_classes` | string array | `['0']` |")
    assert by_name['target_rate'].startswith('| `target_rate` | double | `0.0` | 0.0 to 1000.0 '
                                             '| live |')


def test_cells_cannot_break_the_table_or_open_html_tags() -> None:
    spec = ParameterSpec('example', 'a', 'Topic <image>/x | y & z. Live.', live=True)
    row = parameters_doc.parameter_row(spec)
    assert row == ("| `example` | string | `'a'` |  | live | "
                   'Topic &lt;image>/x \\| y &amp; z. |')
