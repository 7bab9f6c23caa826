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
# import root -> folder, as pyproject.toml maps them
PACKAGES = {"loopline": ROOT / "src" / "loopline", "loopline.components": ROOT / "components",
            "loopline.pipelines": ROOT / "pipelines", "loopline.compiled": ROOT / "compiled"}

# Lowest first. A module may import from its own layer and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("loopline", "loopline.errors", "loopline.images", "loopline.home", "loopline.files", "loopline.processes",
                    "loopline.logs", "loopline.compiled", "loopline.image_contract", "loopline.image_contract_site",
                    "loopline.failures", "loopline.runlock", "loopline.progress", "loopline.localruns")),  # docs/development.md "Layers" lists the same table
    ("data and settings files", ("loopline.dataset_spec", "loopline.input_checks", "loopline.demo_data",
                                 "loopline.data", "loopline.params", "loopline.cron", "loopline.blessing",
                                 "loopline.cluster")),
    ("the model contract", ("loopline.model_contract", "loopline.mlflow_store", "loopline.compiled_pipelines",
                            "loopline.keras_model", "loopline.mlflow_pyfunc_code", "loopline.claims", "loopline.decision")),
    ("training, tuning, validation, drift", ("loopline.tuning_storage", "loopline.tuning", "loopline.tuning_mlflow", "loopline.tuning_report", "loopline.trial_scores", "loopline.training", "loopline.tuning_worker",
                                             "loopline.validation_suite", "loopline.validation_results",
                                             "loopline.validation_report", "loopline.validation", "loopline.drift_settings",
                                             "loopline.drift_report", "loopline.drift", "loopline.budget", "loopline.baseline",
                                             "loopline.streaming", "loopline.reference_profile")),
    ("evaluation, registry, submission", ("loopline.holdout_metrics", "loopline.gate_config", "loopline.evaluation", "loopline.registry", "loopline.vertex",
                                          "loopline.submit_targets", "loopline.submit_kfp",
                                          "loopline.submit_vertex", "loopline.submit", "loopline.object_store",
                                          "loopline.promotion")),
    ("serving, rollout, reruns", ("loopline.serving", "loopline.inference_service", "loopline.rollout", "loopline.reruns", "loopline.kserve_modes",
                                  "loopline.cluster_api", "loopline.version_uri", "loopline.serving_runtime",
                                  "loopline.batch", "loopline.runguard", "loopline.domains",
                                  "loopline.kubernetes_standin")),
    ("step executors", ("loopline.executors",)),
    ("components, pipelines, command line", ("loopline.components", "loopline.pipelines", "loopline.compile",
                                             "loopline.local", "loopline.cli", "loopline.cli_remote", "loopline.cli_checks", "loopline.bench",
                                             "loopline.bench_tools", "loopline.bench_data", "loopline.bench_tuning",
                                             "loopline.docs", "loopline.container_runner", "loopline.rehearsal",
                                             "loopline.bench_containers", "loopline.serving_container", "loopline.kserve_standin",
                                             "loopline.runpage_svg", "loopline.runpage", "loopline.terminal", "loopline.console", "loopline.bench_quality",
                                             "loopline.bench_scale")),
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
    """The Loopline module an imported name belongs to (`loopline.tuning.TuningSettings` -> `loopline.tuning`)."""
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
    best, found = -1, None
    for number, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(f"{name}.")) and len(name) > best:
                best, found = len(name), number
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
    for number, (name, members) in enumerate(LAYERS):
        print(f"{number} {name}: {', '.join(m.removeprefix('loopline.') or 'loopline' for m in members)}")
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
