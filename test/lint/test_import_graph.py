"""Every module of the package imports, and module-level imports form no cycle.

The graph is built statically with ``ast`` from each module's module-level imports (those run
when the module is imported; imports inside functions and ``if TYPE_CHECKING:`` blocks are
not). ``from package import name`` points at ``package.name`` when that is a module, else at
``package``. A cycle means some module can only be imported after another one has been, which
breaks as soon as someone imports them in the other order.
"""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / 'deeplab_ros'


def _module_name(path: Path) -> str:
    return '.'.join(path.relative_to(ROOT).with_suffix('').parts).removesuffix('.__init__')


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob('*.py'))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or \
        (isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run on import: the module body, and its if/try/with blocks."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
        elif isinstance(node, ast.With):
            pending += node.body
    return found


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package modules an import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ''
    if node.level:
        package = module if MODULES[module].name == '__init__.py' else \
            module.rpartition('.')[0]
        for _ in range(node.level - 1):
            package = package.rpartition('.')[0]
        base = f'{package}.{base}' if base else package
    targets = set()
    for alias in node.names:
        if f'{base}.{alias.name}' in MODULES:
            targets.add(f'{base}.{alias.name}')
        elif base in MODULES:
            targets.add(base)
    return targets


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules its module-level imports load."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set().union(*(_targets(module, node)
                                      for node in _module_level_imports(tree))) - {module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert 'deeplab_ros.core.weights.convert.tflite_graph' in \
        graph['deeplab_ros.core.weights.convert.tflite_convs']
    assert 'deeplab_ros.core.models' in graph['deeplab_ros.core.weights.convert.vainf'] or \
        'deeplab_ros.core.weights.checkpoint' in graph['deeplab_ros.core.weights.convert.vainf']
    # The lazy re-exports of deeplab_ros.core load nothing at import.
    assert graph['deeplab_ros.core'] == set()
    assert find_cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert cycles == [], '\n'.join(' <-> '.join(cycle) for cycle in cycles)


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    code = ('import importlib, sys\n'
            f'for name in {sorted(MODULES)!r}:\n'
            '    importlib.import_module(name)\n'
            'from deeplab_ros.core import (available_models, build_model, load_model, '
            'resolve_labels, save_checkpoint, SegmentationResult, Segmenter)\n')
    completed = subprocess.run([sys.executable, '-c', code], cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
