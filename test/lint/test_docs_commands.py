"""Every console command shown in README.md and docs/ parses with the real argument parser,
every relative link there names a file (and heading) that exists, and every ``deeplab_ros.…``
name in their inline code imports.

A renamed or removed option then breaks this test instead of the user. Commands are taken
from fenced code blocks (with ``\\`` continuations) and from inline code spans; each one is
given to the tool's own ``main`` with ``ArgumentParser.parse_args`` wrapped so that the run
stops right after parsing: nothing is executed, but every option, sub-command and choice
goes through the parser the installed console script uses.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
import importlib
from pathlib import Path
import re
import shlex
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
FENCE = re.compile(r'^```[a-z]*\n(.*?)^```', re.MULTILINE | re.DOTALL)
INLINE = re.compile(r'`((?:ros2 (?:run|launch) deeplab_ros |deeplab-ros-)[^`]+)`')
LAUNCH_FILE = ROOT / 'launch' / 'segment.launch.py'


@dataclass(frozen=True)
class DocCommand:
    """One command line found in a document."""

    source: str
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f'{self.source}: {shlex.join(self.argv)}'


def console_scripts() -> dict[str, str]:
    """Console script name -> 'module:function', read from setup.py's entry points."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts':
                    for item in ast.literal_eval(value):
                        name, target = (part.strip() for part in item.split('=', 1))
                        scripts[name] = target
    return scripts


def _command_lines(text: str) -> list[str]:
    """Shell lines of the fenced blocks (continuations joined) and the inline spans."""
    lines: list[str] = []
    for block in FENCE.findall(text):
        joined = re.sub(r'\\\n\s*', ' ', block)
        lines.extend(line.split(' #')[0].strip() for line in joined.splitlines())
    # An inline span with the bare tool name names the tool; it is not a command line.
    lines.extend(span for span in INLINE.findall(text) if len(span.split()) > 1)
    return lines


def _documented_lines() -> list[tuple[str, list[str]]]:
    """(document name, words) of every shell command in the README and the docs."""
    found: list[tuple[str, list[str]]] = []
    for document in DOCUMENTS:
        for line in _command_lines(document.read_text()):
            for part in re.split(r'&&|;|\|', line):
                try:
                    words = shlex.split(part)
                except ValueError:
                    continue
                if words:
                    found.append((document.name, words))
    return found


def _unique(commands: list[DocCommand]) -> list[DocCommand]:
    return list(dict.fromkeys(commands))


def documented_commands() -> list[DocCommand]:
    """The deeplab_ros console-tool commands shown in the README and the docs."""
    scripts = console_scripts()
    found: list[DocCommand] = []
    for source, words in _documented_lines():
        if words[:3] == ['ros2', 'run', 'deeplab_ros']:
            words = words[3:]
        if words and words[0] in scripts and words[0] != 'segmentation_node':
            found.append(DocCommand(source, tuple(words)))
    return _unique(found)


def documented_node_commands() -> list[DocCommand]:
    """``ros2 run deeplab_ros segmentation_node`` and ``ros2 launch`` lines of the documents."""
    return _unique([DocCommand(source, tuple(words)) for source, words in _documented_lines()
                    if words[:3] in (['ros2', 'run', 'deeplab_ros'],
                                     ['ros2', 'launch', 'deeplab_ros'])
                    and (words[3:4] == ['segmentation_node']
                         or words[3:4] == [LAUNCH_FILE.name])])


class _Parsed(Exception):
    """Raised right after a successful parse, so the tool itself never runs."""


def parse_only(entry: Callable[[list[str]], object], argv: list[str],
               monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``entry(argv)`` up to the end of its ``parse_args``; argparse errors propagate."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *args, **kwargs):
        original(self, *args, **kwargs)
        raise _Parsed()

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_then_stop)
    with pytest.raises(_Parsed):
        entry(argv)


COMMANDS = documented_commands()


def test_the_documents_show_commands() -> None:
    tools = {command.argv[0] for command in COMMANDS}
    assert {'deeplab-ros-eval', 'deeplab-ros-train', 'deeplab-ros-bench'} <= tools, tools


@pytest.mark.parametrize('command', COMMANDS, ids=str)
def test_documented_command_parses(command: DocCommand,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, function = console_scripts()[command.argv[0]].split(':')
    entry = getattr(importlib.import_module(module_name), function)
    try:
        parse_only(entry, list(command.argv[1:]), monkeypatch)
    except SystemExit as error:
        pytest.fail(f'{command} is rejected by its parser (exit {error.code})')


def test_a_wrong_option_is_caught(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The check itself can fail: an option the tool does not have is reported."""
    module_name, function = console_scripts()['deeplab-ros-eval'].split(':')
    entry = getattr(importlib.import_module(module_name), function)
    with pytest.raises(SystemExit):
        parse_only(entry, ['--no-such-option', 'x'], monkeypatch)
    assert 'unrecognized arguments' in capsys.readouterr().err


NODE_COMMANDS = documented_node_commands()


def test_the_documents_show_node_commands() -> None:
    kinds = {command.argv[1] for command in NODE_COMMANDS}
    assert kinds == {'run', 'launch'}, NODE_COMMANDS


def _assignments(words: tuple[str, ...]) -> list[str]:
    """Names assigned with ``name:=value`` (launch arguments, ``-p`` parameters, remaps)."""
    return [word.split(':=', 1)[0] for word in words if ':=' in word]


@pytest.mark.parametrize('command', NODE_COMMANDS, ids=str)
def test_documented_node_command_names_real_arguments(command: DocCommand) -> None:
    """Launch arguments exist in the launch file; ``-p`` names are declared parameters."""
    words = command.argv
    if words[1] == 'launch':
        from launch.launch_description_sources import (
            get_launch_description_from_python_launch_file)
        description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
        declared = {argument.name for argument in description.get_launch_arguments()}
        unknown = set(_assignments(words[4:])) - declared
        assert not unknown, f'{command}: no such launch arguments {sorted(unknown)}'
        return
    from deeplab_ros.ros.parameters import SPEC_BY_NAME
    parameters = [words[i + 1] for i, word in enumerate(words[:-1]) if word == '-p']
    unknown = set(_assignments(tuple(parameters))) - set(SPEC_BY_NAME)
    assert not unknown, f'{command}: no such parameters {sorted(unknown)}'


LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
HEADING = re.compile(r'^#{1,6}\s+(.+?)\s*#*$', re.MULTILINE)
EXPLICIT_ANCHOR = re.compile(r'<a id="([^"]+)"')


def _without_code_blocks(text: str) -> str:
    return FENCE.sub('', text)


def anchors(document: Path) -> set[str]:
    """The link targets a Markdown page offers: GitHub's heading slugs and ``<a id>``s."""
    text = _without_code_blocks(document.read_text())
    found: set[str] = set(EXPLICIT_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        slug = re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f'{slug}-{count}')
    return found


def documented_links() -> list[tuple[str, str]]:
    """(document, target) of every relative link and image in the README and the docs."""
    links = []
    for document in DOCUMENTS:
        for target in LINK.findall(_without_code_blocks(document.read_text())):
            if not re.match(r'^[a-z]+:', target):
                links.append((str(document.relative_to(ROOT)), target))
    return list(dict.fromkeys(links))


def test_the_documents_cover_every_page_in_docs() -> None:
    pages = {path.name for path in (ROOT / 'docs').iterdir() if path.suffix == '.md'}
    assert pages == {path.name for path in DOCUMENTS[1:]}
    linked = {Path(target.split('#')[0]).name for _, target in documented_links()}
    assert pages <= linked, f'pages no document links to: {sorted(pages - linked)}'


LINKS = documented_links()


@pytest.mark.parametrize('source, target', LINKS, ids=[f'{s} -> {t}' for s, t in LINKS])
def test_relative_link_resolves(source: str, target: str) -> None:
    """A link to a file names a file of the repository, and its #anchor a heading there."""
    path, _, anchor = target.partition('#')
    linked = (ROOT / source).parent / path if path else ROOT / source
    assert linked.exists(), f'{source}: {target} names no file'
    if anchor:
        assert linked.suffix == '.md', f'{source}: {target}'
        assert anchor in anchors(linked), (
            f'{source}: {target}: no such heading in {path or source} '
            f'({sorted(anchors(linked))})')


CODE_POINTER = re.compile(r'\bdocs/([\w-]+\.md)(?:#([\w-]+))?')
CODE_FILES = sorted([*ROOT.glob('deeplab_ros/**/*.py'), *ROOT.glob('config/*'),
                     *ROOT.glob('launch/*.py'), ROOT / 'Makefile', ROOT / 'package.xml'])


def code_pointers() -> list[tuple[str, str, str]]:
    """(file, page, anchor) of every ``docs/PAGE.md#anchor`` named in the code and config."""
    found = []
    for path in CODE_FILES:
        for page, anchor in CODE_POINTER.findall(path.read_text(errors='replace')):
            found.append((str(path.relative_to(ROOT)), page, anchor))
    return list(dict.fromkeys(found))


POINTERS = code_pointers()


def test_the_code_points_to_the_docs() -> None:
    assert {page for _, page, _ in POINTERS} >= {'benchmarks.md', 'models.md'}


@pytest.mark.parametrize('source, page, anchor', POINTERS,
                         ids=[f'{s} -> {p}#{a}' for s, p, a in POINTERS])
def test_code_pointer_to_the_docs_resolves(source: str, page: str, anchor: str) -> None:
    document = ROOT / 'docs' / page
    assert document.is_file(), f'{source} points to docs/{page}, which does not exist'
    if anchor:
        assert anchor in anchors(document), f'{source}: docs/{page}#{anchor}: no such heading'


INLINE_CODE = re.compile(r'`([^`\n]+)`')
DOTTED_NAME = re.compile(r'\bdeeplab_ros(?:\.[A-Za-z_]\w*)+')


def documented_python_names() -> list[tuple[str, str]]:
    """(document, dotted name) of every ``deeplab_ros.…`` name in the documents' inline code."""
    found = []
    for document in DOCUMENTS:
        for span in INLINE_CODE.findall(_without_code_blocks(document.read_text())):
            found.extend((document.name, name) for name in DOTTED_NAME.findall(span))
    return list(dict.fromkeys(found))


PYTHON_NAMES = documented_python_names()


@pytest.mark.parametrize('source, name', PYTHON_NAMES,
                         ids=[f'{s}: {n}' for s, n in PYTHON_NAMES])
def test_documented_python_name_exists(source: str, name: str) -> None:
    """A module moved or a function renamed breaks this test instead of the reader."""
    parts = name.split('.')
    for split in range(len(parts), 0, -1):
        try:
            target = importlib.import_module('.'.join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            assert hasattr(target, attribute), f'{source}: {name}: no {attribute}'
            target = getattr(target, attribute)
        return
    pytest.fail(f'{source}: {name} names no module')
