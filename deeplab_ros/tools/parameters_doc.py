"""Write the node's parameter reference (``docs/parameters.md``) from its parameter table.

    python -m deeplab_ros.tools.parameters_doc --output docs/parameters.md   # = make docs
    python -m deeplab_ros.tools.parameters_doc                                # to stdout

The page is generated from :data:`deeplab_ros.ros.parameters.SPECS`, the table the node
declares its parameters from, so the reference cannot drift from the node; a test fails when
the committed page differs from what this prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
import re
import sys
from typing import Any

from rcl_interfaces.msg import ParameterType

from deeplab_ros.ros.parameters import ParameterSpec, SPECS

#: The command that regenerates the page (named in the page and in the staleness test).
COMMAND = 'make docs'
MODULE_COMMAND = 'python -m deeplab_ros.tools.parameters_doc --output docs/parameters.md'

_HEADER = f"""# Parameters of `deeplab_segmentation`

<!-- Generated from SPECS in deeplab_ros/ros/parameters.py by `{COMMAND}`
     ({MODULE_COMMAND}).
     Do not edit by hand. -->

Every parameter of the segmentation node, in the order the node declares them. The node's
other references are in [node.md](node.md); `config/segment.yaml` lists every parameter at its
default with a comment, and `ros2 param describe /deeplab_segmentation <name>` prints the
description and range below from the running node.

- **configure**: read when the node is configured. A change while it is configured is
  accepted but takes effect at the next `configure` (the node logs that). A value from a
  parameters file or the command line that `ros2 param set` would refuse makes `configure`
  fail with the parameter named in the log.
- **live**: applies at once, to the next frame.

A value outside the range or the choices is refused by `ros2 param set` with the reason.
String arrays take class names or class ids (as strings) where they name classes.

| parameter | type | default | range / choices | applies | description |
| --- | --- | --- | --- | --- | --- |
"""

_TYPE_NAMES = {bool: 'bool', int: 'integer', float: 'double', str: 'string'}
_APPLIES_SUFFIX = re.compile(r'\s*(?:Read at configure|Live)\.$')


def type_name(spec: ParameterSpec) -> str:
    """The ROS parameter type as ``ros2 param describe`` names it."""
    if spec.type == ParameterType.PARAMETER_STRING_ARRAY:
        return 'string array'
    return _TYPE_NAMES[type(spec.default)]


def _yaml_value(value: Any) -> str:
    """A value as it is written in a parameters file."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(_yaml_value(item) for item in value) + ']'
    return repr(value)


def _range(spec: ParameterSpec) -> str:
    if spec.choices:
        return ', '.join(f'`{choice}`' for choice in spec.choices)
    if spec.minimum is None:
        return ''
    return f'{_yaml_value(spec.minimum)} to {_yaml_value(spec.maximum)}'


def _cell(text: str) -> str:
    """Text safe inside a table cell (no HTML tags, no column breaks)."""
    return text.replace('&', '&amp;').replace('<', '&lt;').replace('|', '\\|')


def parameter_row(spec: ParameterSpec) -> str:
    """The table row of one parameter."""
    description = _APPLIES_SUFFIX.sub('', spec.description)
    cells = (f'`{spec.name}`', type_name(spec), f'`{_yaml_value(spec.default)}`', _range(spec),
             'live' if spec.live else 'configure', _cell(description))
    return '| ' + ' | '.join(cells) + ' |'


def parameters_markdown(specs: Iterable[ParameterSpec] = SPECS) -> str:
    """The whole reference page for ``specs``."""
    return _HEADER + ''.join(parameter_row(spec) + '\n' for spec in specs)


def main(argv: list[str] | None = None) -> int:
    """Write the page to ``--output`` (stdout without it); returns the exit status."""
    parser = argparse.ArgumentParser(prog='parameters_doc', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--output', type=Path, help='file to write (default: stdout)')
    args = parser.parse_args(argv)
    text = parameters_markdown()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
