"""The package's layout: the model package builds layers from what it is given and imports no orchestration."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_galrec"
# Orchestration and data loading: what a run does around the model, never what the model imports.
FORBIDDEN = (
    "recbole_galrec.config",
    "recbole_galrec.quick_start",
    "recbole_galrec.running.steps",
    "recbole_galrec.running.model_inputs",
    "recbole_galrec.lookup",
    "recbole_galrec.cli",
    "recbole_galrec.data",
    "recbole_galrec.external",
    "recbole_galrec.benchmark",
    "recbole_galrec.prepare",
)


def _module_file(name: str) -> Path | None:
    """The file of a module of this package (a package's __init__.py), or None."""
    parts = name.split(".")[1:]
    candidate = PACKAGE.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def _imports(name: str) -> set[str]:
    """The modules of this package that module ``name`` imports, at any level of its code, each with the
    packages that importing it runs (``a.b.c`` also runs ``a.b``), the top package's __init__ aside."""
    path = _module_file(name)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix.startswith("recbole_galrec.") and _module_file(prefix):
                    found.add(prefix)
    return found


def _reached(start: list[str]) -> dict[str, str]:
    """Every module of this package reached from ``start`` through imports, with the module that imported it."""
    reached = {name: "" for name in start}
    todo = list(start)
    while todo:
        name = todo.pop()
        for target in _imports(name):
            if target not in reached:
                reached[target] = name
                todo.append(target)
    return reached


def test_the_model_package_imports_no_orchestration():
    models = ["recbole_galrec.model"] + [f"recbole_galrec.model.{p.stem}" for p in (PACKAGE / "model").glob("[!_]*.py")]
    reached = _reached(models)
    assert "recbole_galrec.layers.backbone" in reached and "recbole_galrec.model.encoders" in reached  # the walk works
    bad = {name: via for name, via in reached.items() if name.startswith(FORBIDDEN)}
    assert not bad, f"the model package reaches orchestration (module: imported by): {bad}"


def test_the_walk_sees_orchestration_where_it_is():
    """The check above can fail: the run path reaches data loading and the model."""
    reached = _reached(["recbole_galrec.running.steps"])
    assert "recbole_galrec.data.create" in reached and "recbole_galrec.lookup" in reached
