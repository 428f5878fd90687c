"""How a console tool fails: one line on stderr naming the problem, and an exit status.

Every tool catches :data:`TOOL_FAILURES` around its work and hands the error to
:func:`report_failure`; anything else is a bug and ends with its traceback.
"""

from __future__ import annotations

import argparse
import sys

from deeplab_ros.core.errors import ConfigurationError

#: What a tool reports as a one-line error: a configuration that cannot work, or the file
#: system refusing (permission, disk full).
TOOL_FAILURES = (ConfigurationError, OSError)


def option_for(parser: argparse.ArgumentParser | None, setting: str) -> str:
    """The command-line option of ``parser`` that sets ``setting`` ('' when it has none)."""
    if parser is None or not setting:
        return ''
    for action in parser._actions:  # noqa: SLF001 - argparse lists its options nowhere else
        if action.dest == setting and action.option_strings:
            return max(action.option_strings, key=len)
    return ''


def report_failure(prog: str, error: Exception, parser: argparse.ArgumentParser | None = None,
                   *, status: int = 1) -> int:
    """Print ``PROG: error: MESSAGE`` on stderr and return ``status``.

    When ``error`` names the setting at fault and ``parser`` has an option for it, the line
    ends with that option (``(--weights)``): the core's messages speak of settings, the tool
    knows its flags.
    """
    option = option_for(parser, getattr(error, 'setting', ''))
    suffix = f' ({option})' if option else ''
    print(f'{prog}: error: {error}{suffix}', file=sys.stderr)
    return status
