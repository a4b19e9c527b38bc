"""Imports run one way (docs/ARCHITECTURE.md): each module imports only modules of the
groups before its own, or of its own group, and no import cycle exists between modules.

Read from the source with ``ast``: every ``import`` and ``from ... import`` counts,
those inside functions too (a lazy import is still a dependency); only imports under
``if TYPE_CHECKING:`` (annotations) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "clearconv"

#: the groups in order: a module may import any module of an earlier group, and modules
#: of its own group; the most specific prefix names a module's group
GROUPS = [
    ["clearconv.errors", "clearconv._version", "clearconv._moved"],
    ["clearconv.shapes", "clearconv.io.files"],
    ["clearconv.reference", "clearconv.data", "clearconv.kernels.registry",
     "clearconv.kernels.threads", "clearconv.kernels.tuning", "clearconv.kernels.allocator",
     "clearconv.kernels.compiled", "clearconv.kernels.jit", "clearconv.kernels.__init__"],
    ["clearconv.functional"],
    ["clearconv.kernels"],             # the algorithms, built on functional/
    ["clearconv.layers"],
    ["clearconv.io.onnx"],
    ["clearconv.train"],
    ["clearconv.io", "clearconv.filters", "clearconv.gradcheck"],
    ["clearconv.explain"],
    ["clearconv.explore"],            # the interactive explorer, built on explain/
    ["clearconv._runs"],              # the run checks of the command line
    ["clearconv.cli"],
    ["clearconv.__init__", "clearconv.__main__", "clearconv.kernels.__main__"],
]   # (the last group: the entry points, which may import anything)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def group_of(name: str) -> tuple[int, str]:
    """(group index, matching prefix) of a module name (``pkg.__init__`` for a package)."""
    best: tuple[int, str] | None = None
    for index, prefixes in enumerate(GROUPS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (index, prefix)
    assert best is not None, f"{name} belongs to no group: add it to GROUPS"
    return best


def _package_of(name: str, path: Path) -> str:
    return name.rsplit(".", 1)[0] if path.name != "__init__.py" else name[:-len(".__init__")]


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The module a dotted import target names (a package as ``pkg.__init__``)."""
    if target in known:
        return target
    if f"{target}.__init__" in known:
        return f"{target}.__init__"
    return None


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported module) for every clearconv import of a module, outside
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    package = _package_of(name, path)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod where there is one
            targets = [f"{base}.{a.name}" if _resolve(f"{base}.{a.name}", known) else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != "clearconv":
                continue
            resolved = _resolve(target, known)
            if resolved is None:
                found.append((node.lineno, f"<missing {target}>"))
            elif resolved != name:
                found.append((node.lineno, resolved))
    return found


def graph() -> dict[str, list[tuple[int, str]]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def _family(prefix: str) -> str:
    """Modules of one group may import each other when they are of one package
    (``clearconv.kernels.registry`` and ``clearconv.kernels.threads``), not across
    packages of the same group (``clearconv.data`` and ``clearconv.reference``)."""
    return ".".join(prefix.split(".")[:2])


def test_every_module_belongs_to_a_group():
    for name in modules():
        group_of(name)


def test_no_module_imports_a_module_that_does_not_exist():
    missing = [f"{name}:{line} imports {target[9:-1]}" for name, deps in graph().items()
               for line, target in deps if target.startswith("<missing ")]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_no_module_imports_a_later_group():
    upward = []
    for name, deps in graph().items():
        deps = [(line, t) for line, t in deps if not t.startswith("<missing ")]
        mine, my_prefix = group_of(name)
        if mine == len(GROUPS) - 1:      # the entry points (package, __main__) use anything
            continue
        for line, target in deps:
            theirs, their_prefix = group_of(target)
            if theirs > mine or (theirs == mine and _family(their_prefix) != _family(my_prefix)):
                upward.append(f"{name}:{line} imports {target} ({their_prefix}, group "
                              f"{theirs} > {my_prefix}, group {mine})")
    assert not upward, "upward or sideways imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    deps = {name: sorted({t for _, t in targets if not t.startswith("<missing ")})
            for name, targets in graph().items()}
    cycles = []
    state: dict[str, int] = {}       # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in deps.get(node, []):
            if nxt.endswith(".__init__") and node.startswith(nxt[:-len(".__init__")] + "."):
                continue            # a module and its own package's __init__: Python's order
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(deps):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("bad, good", [
    ("from ..train.sequential import Sequential", None),
])
def test_the_checker_sees_an_upward_import(tmp_path, bad, good):
    """The check can fail: a layer importing train/ is reported."""
    known = modules()
    path = PACKAGE / "layers" / "conv.py"
    fake = tmp_path / "conv.py"
    fake.write_text(path.read_text() + f"\n\ndef _x():\n    {bad}\n")
    found = imports("clearconv.layers.conv", fake, known)
    assert (found[-1][1], group_of(found[-1][1])[0] > group_of("clearconv.layers.conv")[0]) \
        == ("clearconv.train.sequential", True)
