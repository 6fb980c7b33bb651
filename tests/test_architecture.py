"""Architecture rules: one-way dependencies and an explicit public API in every module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    p for pkg in ("encoder", "linkage_unit", "benchmarks") for p in (ROOT / pkg).rglob("*.py")
    # Alembic's migration scripts are run by Alembic, not imported as modules.
    if p.name != "__main__.py" and "migrations" not in p.parts
)  # fmt: skip


def test_encoder_imports_without_the_linkage_unit_or_a_web_framework() -> None:
    code = (
        "import sys, encoder, encoder.cli, encoder.exports\n"
        "banned = ('linkage_unit', 'fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'dask')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in banned]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_has_docstring_and_all(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path}: a module opens with its responsibility"
    if path.name == "__init__.py" and len(tree.body) == 1:
        return  # a package holding only its docstring exports nothing
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "__all__" in assigned, f"{path}: explicit public API (__all__) expected"


def test_encoder_never_imports_linkage_unit_in_source() -> None:
    for path in (ROOT / "encoder").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                    node.module or ""]  # fmt: skip
                assert not any(n.split(".")[0] == "linkage_unit" for n in names), path


def test_public_names_resolve() -> None:
    import encoder

    for name in encoder.__all__:
        assert getattr(encoder, name) is not None, name
    with pytest.raises(AttributeError):
        _ = encoder.no_such_name  # type: ignore[attr-defined]


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list | tuple)
            return [str(v) for v in value]
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_all_is_complete(path: Path) -> None:
    """`__all__` names every public function and class of the module, and only its names.

    A public API that is written down, not guessed.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = _declared_all(tree)
    if declared is None:
        return  # a docstring-only package (checked above)
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        # Route handlers and commands are reached through their router or app
        # (`@router.get(...)`, `@app.command()`), not imported by name.
        and not any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
            for d in node.decorator_list
        )
    }
    bound = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {t.id for t in targets if isinstance(t, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    assert not public - set(declared), f"{path}: public but not in __all__"
    assert not set(declared) - bound, f"{path}: in __all__ but not defined"
    assert len(declared) == len(set(declared)), f"{path}: a name twice in __all__"


SCANNED_PACKAGES = ("encoder", "linkage_unit", "benchmarks")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _private_imports(source: str, rel: PurePosixPath) -> list[str]:
    """``module._name`` for every private name of one of our modules that ``rel`` uses.

    ``rel`` is the using module's path relative to the root; it uses a name by ``from module
    import _name``, or as ``alias._name`` where ``alias`` is an imported module.
    """
    package = list(rel.parent.parts)
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> the module of ours it is bound to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            if source.split(".")[0] not in SCANNED_PACKAGES:
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"{source}.{alias.name}")
                elif _is_module(f"{source}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in SCANNED_PACKAGES:
                    local = alias.asname or alias.name.split(".")[0]
                    modules[local] = alias.name if alias.asname else local
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain: list[str] = []
            value: ast.expr = node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in modules:
                target = ".".join([modules[value.id], *chain])
                if _is_module(target):
                    found.append(f"{target}.{node.attr}")
    return [f"{rel}: {name}" for name in found]


def test_no_module_imports_another_modules_private_names() -> None:
    """A name another module needs is public in its one home, not reached for privately."""
    found = {
        violation
        for package in SCANNED_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for violation in _private_imports(
            path.read_text(encoding="utf-8"), PurePosixPath(path.relative_to(ROOT).as_posix())
        )
    }
    assert not found, sorted(found)


def test_the_private_import_scan_sees_both_forms() -> None:
    source = (
        "from linkage_unit.matching.similarity import _GROUP_ROWS\n"
        "from linkage_unit.matching import solving\n"
        "import linkage_unit.matching.blocking as blk\n"
        "from .bitarrays import check_bits, __all__\n"
        "from ..jobs import _nothing\n"
        "x = solving._x, blk._y, solving.public\n"
    )
    rel = PurePosixPath("linkage_unit/matching/probe.py")
    assert sorted(_private_imports(source, rel)) == [
        f"{rel}: linkage_unit.jobs._nothing",
        f"{rel}: linkage_unit.matching.blocking._y",
        f"{rel}: linkage_unit.matching.similarity._GROUP_ROWS",
        f"{rel}: linkage_unit.matching.solving._x",
    ]
