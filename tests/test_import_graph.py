"""The package's import graph: no cycles (counting imports inside functions), and a loop without pygame."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kiosk

PACKAGE = Path(kiosk.__file__).parent
# Where a running kiosk goes: none of these may reach the example screen states.
RUNNING_KIOSK = ("kiosk.app", "kiosk.daemon", "kiosk.feedback", "kiosk.signals", "kiosk.screen.display")


def module_name(path: Path) -> str:
    """`kiosk/screen/states.py` → `kiosk.screen.states`; a package's `__init__.py` is the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, here: str, is_package: bool) -> Iterator[str]:
    """Every kiosk module `tree` imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding `here`
                anchor = here.split(".")[: len(here.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from kiosk import screen` imports the submodule kiosk.screen.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = imported(tree, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph as a list of modules (first repeated at the end), or [] when there is none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in on_path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        on_path.add(node)
        for target in sorted(graph[node]):
            if cycle := visit(target):
                return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return []

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    source = "from . import b\nfrom .c import x\ndef f():\n    import kiosk.d\n    from kiosk.e import y\n"
    found = set(imported(ast.parse(source), "kiosk.pkg.a", is_package=False))
    assert {"kiosk.pkg.b", "kiosk.pkg.c", "kiosk.d", "kiosk.e", "kiosk.e.y"} <= found


def test_a_cycle_is_found() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert {"kiosk.daemon", "kiosk.screen.states", "kiosk.feedback"} <= graph.keys()
    assert find_cycle(graph) == []


def test_a_running_kiosk_never_reaches_the_example_states() -> None:
    graph = import_graph()
    for start in RUNNING_KIOSK:
        assert "kiosk.screen.samples" not in reachable(graph, start) | {start}, start


def test_the_screen_states_import_no_painting() -> None:
    graph = import_graph()
    painting = {"kiosk.screen.painting", "kiosk.screen.typesetting", "kiosk.screen.display"}
    assert not reachable(graph, "kiosk.screen.states") & painting


BLOCK_PYGAME = """
import sys
sys.modules["pygame"] = None  # any `import pygame` now raises ImportError
import kiosk.daemon
import kiosk.feedback
import kiosk.screen.states
try:
    import kiosk.screen.painting
except ImportError:
    print("painting needs pygame")
"""


def test_the_loop_imports_without_pygame() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_PYGAME], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "painting needs pygame", "the blocker must really block pygame"
