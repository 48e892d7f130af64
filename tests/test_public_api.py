"""The public surface stays what it says: every name a package exports in ``__all__`` exists
and imports, and every error Greenroom raises on purpose is one class in ``errors.py``'s tree."""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
from pathlib import Path

import pytest

import greenroom
from greenroom import errors

pytestmark = pytest.mark.unit

SRC = Path(greenroom.__file__).parent
PACKAGES = sorted(
    name
    for _, name, is_package in pkgutil.walk_packages(greenroom.__path__, "greenroom.")
    if is_package
)
EXPORTING = ["greenroom.errors", *PACKAGES]


def test_the_walk_finds_the_packages() -> None:
    assert {"greenroom.avatars", "greenroom.compositor", "greenroom.keying"} <= set(PACKAGES)


@pytest.mark.parametrize("name", EXPORTING)
def test_every_exported_name_exists_and_imports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.skip(f"{name} exports nothing by __all__")
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # what a user's star import binds
    assert set(exported) <= set(namespace)


def test_errors_module_exports_its_whole_tree() -> None:
    defined = {
        n
        for n, v in vars(errors).items()
        if isinstance(v, type) and issubclass(v, errors.GreenroomError)
    }
    assert defined == set(errors.__all__)


def _exception_classes() -> list[tuple[str, str, list[str]]]:
    """(file, class, base names) for every class in src/greenroom whose base is an exception:
    a builtin one, or a name from the tree."""
    tree = set(errors.__all__)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [
                b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
            ]
            builtin = [b for b in bases if isinstance(getattr(builtins, b, None), type)]
            if any(issubclass(getattr(builtins, b), BaseException) for b in builtin) or (
                set(bases) & tree
            ):
                found.append((str(path.relative_to(SRC)), node.name, bases))
    return found


def test_every_error_class_is_in_the_tree_once() -> None:
    classes = _exception_classes()
    outside = [
        (f, c, b)
        for f, c, b in classes
        if not set(b) & set(errors.__all__) and not (f == "errors.py" and c == "GreenroomError")
    ]
    assert not outside, f"errors not derived from GreenroomError: {outside}"
    names = [c for _, c, _ in classes]
    twice = sorted({(f, c) for f, c, _ in classes if names.count(c) > 1})
    assert not twice, f"one error name, two classes: {twice}"
