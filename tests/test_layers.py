"""Loopline's layers: the import graph of every module (imports inside functions included) has
no cycle, and no module imports from a layer above its own.

    python -m tests.test_layers     # prints the layers, the cycle count and the largest modules

A function-local import of a Loopline module is allowed only where it delays a heavy
third-party library (the imported module pulls one in at import time), and in component bodies,
which KFP ships to the container on their own.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import root -> folder, as setup.py maps them; tools/ (the development tools) is not installed.
PACKAGES = {"loopline": ROOT / "src" / "loopline", "loopline.components": ROOT / "components",
            "loopline.pipelines": ROOT / "pipelines", "loopline.compiled": ROOT / "compiled", "tools": ROOT / "tools"}
INSTALLED = ("loopline",)

# The packages, lowest first: the folder tree is the layer diagram. A module may import from its own
# package and the packages below. docs/development.md shows the same table (generated from this one).
LAYERS: list[tuple[str, str]] = [
    ("loopline.core", "errors, files, the state folder, logs, processes, progress, images, the MLflow store"),
    ("loopline.compiled", "the compiled pipelines and components (YAML), shipped with the package"),
    ("loopline.data", "the dataset spec, reading files and URIs, input checks, splits, the demo data"),
    ("loopline.model", "the SavedModel contract, the Keras classifier, the decision threshold, the pyfunc"),
    ("loopline.tuning", "Optuna studies, their storage and tracking, the training budget, streaming, the final fit"),
    ("loopline.validation", "Great Expectations: the inferred suite, its results and report"),
    ("loopline.drift", "drift statistics, the drift report, the reference profile"),
    ("loopline.registry", "the MLflow registry: lineage, aliases, claims, promotion, object storage, Vertex upload"),
    ("loopline.evaluation", "holdout metrics, the baseline, the gate and the blessing"),
    ("loopline.traffic", "served traffic: KServe's logger format, the capture, the time window and its drift"),
    ("loopline.serving", "the model server, the InferenceService, KServe modes and runtime, rollouts, batch prediction"),
    ("loopline.ops", "parameters and their domains, schedules, cluster settings, submission, reruns"),
    ("loopline.executors", "one executor per step: what a component's body calls"),
    ("loopline.components", "the KFP components (typed interfaces over the executors)"),
    ("loopline.pipelines", "the training and drift-monitor pipelines"),
    ("loopline.local", "the loop on one machine: the local run, console, run page, records, locks"),
    ("loopline.cli", "the `loopline` command line"),
    ("tools", "development tools, not installed: benchmarks, the README generator, the rehearsal"),
]
# Third-party libraries whose import takes long enough to delay until a function needs them.
HEAVY = ("tensorflow", "keras", "optuna", "optuna_integration", "great_expectations", "evidently", "mlflow",
         "kserve", "kubernetes", "google", "sklearn", "plotly", "pandas", "numpy", "pyarrow", "scipy", "kfp",
         "jsonschema", "psycopg", "sqlalchemy")


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """(imported name, inside a function) for every import statement of the module."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, local) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, path.name == "__init__.py")
                found.extend((f"{base}.{alias.name}", local) for alias in child.names)
            elif (isinstance(child, ast.Call) and getattr(child.func, "attr", getattr(child.func, "id", "")) == "import_module"
                  and child.args and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                found.append((child.args[0].value, local))  # importlib.import_module("loopline.x") imports too
            visit(child, inner)

    visit(tree, False)
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The Loopline module an imported name belongs to (`loopline.tuning.study.TuningSettings` -> `loopline.tuning.study`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def graph() -> dict[str, dict[str, bool]]:
    """module -> {imported Loopline module: imported only inside functions}."""
    known = modules()
    edges: dict[str, dict[str, bool]] = {}
    for module, path in known.items():
        out: dict[str, bool] = {}
        for name, local in imports(module, path):
            target = _owner(name, known)
            if target and target != module and not module.startswith(f"{target}."):
                out[target] = out.get(target, True) and local
        edges[module] = out
    return edges


def cycles(edges: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in edges:
        if v not in index:
            connect(v)
    return found


def layer(module: str) -> int:
    if module == "loopline":  # the root package: its version, nothing more
        return 0
    found = None
    for number, (name, _) in enumerate(LAYERS):
        if module == name or module.startswith(f"{name}."):
            found = number
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return found


def _heavy_at_import(module: str, known: dict[str, Path], seen: set[str] | None = None) -> bool:
    """Whether importing `module` imports a heavy third-party library (through module-level imports)."""
    seen = seen if seen is not None else set()
    if module in seen:
        return False
    seen.add(module)
    for name, local in imports(module, known[module]):
        if local:
            continue
        if name.split(".")[0] in HEAVY:
            return True
        target = _owner(name, known)
        if target and target != module and _heavy_at_import(target, known, seen):
            return True
    return False


def test_every_module_has_a_layer():
    for module in modules():
        layer(module)


def test_every_package_is_a_layer():
    """No module sits loose at the top of the library: each is inside one of the layers' packages."""
    loose = [m for m in modules() if m.count(".") == 1 and m.startswith("loopline.")
             and m not in {name for name, _ in LAYERS}]
    assert loose == []


def test_the_installed_package_never_imports_the_development_tools_or_the_tests():
    known = modules()
    found = [f"{module} imports {name}" for module, path in known.items() if module.startswith(INSTALLED)
             for name, _ in imports(module, path) if name.split(".")[0] in ("tools", "tests")]
    assert found == []


def test_the_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
              for module, targets in graph().items() for target in targets if layer(target) > layer(module)]
    assert upward == []


def test_function_local_imports_only_delay_heavy_libraries():
    known = modules()
    needless = [f"{module} imports {target} inside a function, which delays no heavy library: import it at the top"
                for module, targets in graph().items() if not module.startswith("loopline.components.")
                for target, local in targets.items() if local and not _heavy_at_import(target, known)]
    assert needless == []


def main() -> int:
    edges = graph()
    known = modules()
    for number, (name, what) in enumerate(LAYERS):
        count = sum(1 for m in known if m == name or m.startswith(f"{name}."))
        print(f"{number:2} {name:22} {count:3} modules  {what}")
    found = cycles(edges)
    print(f"\nmodules: {len(edges)}, imports between them: {sum(len(t) for t in edges.values())}, "
          f"cycles: {len(found)}")
    for component in found:
        print(f"  cycle of {len(component)}: {', '.join(component)}")
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, p in modules().items()), reverse=True)[:5]
    print("largest modules: " + ", ".join(f"{m} {n}" for n, m in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
