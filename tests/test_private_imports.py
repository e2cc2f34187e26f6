"""No library module imports another module's private names (issue 18, item 3).

A name with a leading underscore is private to its module: ``from .x import _y`` and
``x._y`` from another module are forbidden. Allowed: a package's own private helper modules
(``ensemble/_common.py`` used inside ``ensemble``), and ``sigprop._checks``, the private
module of argument checks every public function uses, whose names carry no underscore.
"""
from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "sigprop"

# Known uses still to be removed, each with the work that removes it (none left since issue 18
# items 1-2). This list may only
# shrink: a new private import fails the test.
KNOWN: set = set()


def _module_file(base: Path, dotted: str | None) -> Path:
    return base.joinpath(*(dotted.split(".") if dotted else []))


def private_imports() -> set[str]:
    found = set()
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB).as_posix()
        tree = ast.parse(path.read_text())
        modules = {}  # local alias -> the sigprop module it names
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.level >= 1):
                continue
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            target = _module_file(base, node.module)
            source = target.with_suffix(".py") if target.with_suffix(".py").exists() else target / "__init__.py"
            for alias in node.names:
                sub = target / alias.name
                if sub.with_suffix(".py").exists() or sub.is_dir():  # a module, imported by name
                    modules[alias.asname or alias.name] = sub
                    private_elsewhere = alias.name.startswith("_") and sub.parent != path.parent
                    if private_elsewhere and alias.name != "_checks":
                        found.add(f"{rel}: imports the private module {alias.name}")
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    own_helper = source.name.startswith("_") and source.parent == path.parent
                    if not own_helper:
                        found.add(f"{rel}: from {'.' * node.level}{node.module or ''} import {alias.name}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.add(f"{rel}: {node.value.id}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names():
    new = private_imports() - KNOWN
    assert not new, "private names imported across modules:\n  " + "\n  ".join(sorted(new))


def test_the_list_of_known_private_imports_only_shrinks():
    gone = KNOWN - private_imports()
    assert not gone, "remove these from KNOWN, they are fixed:\n  " + "\n  ".join(sorted(gone))
