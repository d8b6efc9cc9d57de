"""The package's layout: the model package builds layers from what it is given and imports no orchestration; the
building blocks (``layers``) know neither orchestration nor the model; the top level holds no model building
blocks; module-level imports form no cycle; no module is over 400 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_galrec"
# Orchestration and data loading: what a run does around the model, never what the model imports.
FORBIDDEN = (
    "recbole_galrec.config",
    "recbole_galrec.quick_start",
    "recbole_galrec.running",
    "recbole_galrec.lookup",
    "recbole_galrec.recommend",
    "recbole_galrec.recbole_keys",
    "recbole_galrec.compat",
    "recbole_galrec.cli",
    "recbole_galrec.data",
    "recbole_galrec.external",
    "recbole_galrec.benchmark",
    "recbole_galrec.prepare",
)


MAX_LINES = 400


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
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(name, node)
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


def _from_base(name: str, node: ast.ImportFrom) -> str:
    """The absolute module that ``from <module> import ...`` in module ``name`` reads (relative imports resolved)."""
    base = node.module or ""
    if not node.level:
        return base
    package = name if _module_file(name).name == "__init__.py" else name.rpartition(".")[0]
    parts = package.split(".")
    return ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))


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


def _package_modules(folder: str = "") -> list[str]:
    """Every module of this package under ``folder`` (a package by its own name), found by its file."""
    names = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        parts = ["recbole_galrec", *path.relative_to(PACKAGE).with_suffix("").parts]
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_layers_reach_neither_orchestration_nor_the_model():
    layers = _package_modules("layers")
    reached = _reached(layers)
    assert "recbole_galrec.settings" in reached and "recbole_galrec.errors" in reached  # the walk works
    banned = (*FORBIDDEN, "recbole_galrec.model")
    bad = {name: via for name, via in reached.items() if name.startswith(banned)}
    assert not bad, f"the layers reach orchestration or the model (module: imported by): {bad}"
    # the same filter flags what it should: the model package's own walk reaches the model
    assert "recbole_galrec.model.encoders" in {
        n for n in _reached(["recbole_galrec.model.galrec"]) if n.startswith(banned)
    }


_MODULE_BASES = {"nn.Module", "torch.nn.Module", "Module"}


def _module_subclasses(source: str) -> list[str]:
    """Names of the classes in ``source`` (at any depth) with ``nn.Module`` among their written bases."""
    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base) in _MODULE_BASES for base in node.bases)
    ]


def test_the_top_level_defines_no_module_subclass():
    """Model building blocks live in ``layers`` (or ``model``), not in the package's top-level modules."""
    example = "import torch\nfrom torch import nn\nclass A(nn.Module): ...\nclass B: ...\nclass C(torch.nn.Module): ..."
    assert _module_subclasses(example) == ["A", "C"]  # the check can fail
    assert _module_subclasses((PACKAGE / "layers" / "queue.py").read_text(encoding="utf-8")) == ["KeyQueue"]
    top = sorted(PACKAGE.glob("*.py"))
    assert PACKAGE / "settings.py" in top and PACKAGE / "quick_start.py" in top
    found = {path.name: names for path in top if (names := _module_subclasses(path.read_text(encoding="utf-8")))}
    assert not found, f"top-level modules define nn.Module subclasses: {found}"


def _module_level_imports(name: str) -> set[str]:
    """The modules of this package that module ``name`` needs run while it runs itself: its ``import`` statements
    at module level (direct children of the module body, so ``if TYPE_CHECKING:`` and function bodies are not
    counted). ``from X import a`` needs ``X.a`` when that is a module, else ``X``."""
    found = set()
    for node in ast.parse(_module_file(name).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(name, node)
            targets = [f"{base}.{a.name}" if _module_file(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.split(".")[0] == "recbole_galrec" and _module_file(t)}
    return found


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (node -> the nodes it points to) as a path that returns to its start, or None."""
    done, path = set(), []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def test_module_level_imports_form_no_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]  # it can fail
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    graph = {name: _module_level_imports(name) for name in _package_modules()}
    assert "recbole_galrec.layers.prompt" in graph["recbole_galrec.model.galrec"]  # the graph holds real edges
    assert "recbole_galrec.quick_start" in graph["recbole_galrec"]
    cycle = _find_cycle(graph)
    assert cycle is None, f"module-level imports form a cycle: {' -> '.join(cycle)}"


def test_no_module_is_over_the_line_limit():
    limit = MAX_LINES
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(lengths) > 20 and max(lengths.values()) > limit // 2  # the count reads the package's real files
    too_long = {path: count for path, count in lengths.items() if count > limit}
    assert not too_long, f"modules over {limit} lines (split them by what their parts do): {too_long}"
