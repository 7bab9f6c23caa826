"""Compile Loopline's pipelines and components to YAML (`loopline compile`, `make compile`)."""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from pathlib import Path

import loopline.components
import loopline.pipelines
from loopline.core.images import REGISTRY_ENV
from loopline.ops.cluster import ClusterSettings
from loopline.serving.runtime import write_runtimes

COMPONENTS = tuple(loopline.components.__all__)  # kfp and the standard library only
PIPELINES = tuple(loopline.pipelines.__all__)


def _use_registry(registry: str | None) -> None:
    """The image registry is read when the component modules are imported, so a different
    registry reloads them."""
    from loopline.core import images

    if registry:
        images.check_registry(registry, "--registry")
    if registry and registry.rstrip("/") != images.registry():
        os.environ[REGISTRY_ENV] = registry
        for name in [m for m in sys.modules if m.startswith(("loopline.core.images", "loopline.components", "loopline.pipelines"))]:
            del sys.modules[name]


def pipeline_function(name: str, kubernetes=None):
    """The pipeline `name`, built with the cluster settings `kubernetes` (a ClusterSettings;
    None: no cluster settings file, ClusterSettings' defaults)."""
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline '{name}' (known: {', '.join(PIPELINES)})")
    module = importlib.import_module(f"loopline.pipelines.{name}")
    return getattr(module, f"build_{name}")(kubernetes if kubernetes is not None else ClusterSettings())


def compile_pipeline(name: str, path: Path, *, registry: str | None = None, kubernetes=None) -> Path:
    """Write one pipeline's YAML to `path`."""
    from kfp import compiler

    _use_registry(registry)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_function(name, kubernetes), str(path))
    _stable_header(path)
    return path


def compile_all(out: Path, *, registry: str | None = None, kubernetes=None) -> list[Path]:
    """Write `out/<pipeline>.yaml` and `out/components/<component>.yaml`.

    `kubernetes` (a `loopline.ops.cluster.ClusterSettings`) applies cluster settings to the
    pipelines' tasks; components are compiled without them.
    """
    from kfp import compiler

    _use_registry(registry)
    components = importlib.import_module("loopline.components")
    out = Path(out)
    (out / "components").mkdir(parents=True, exist_ok=True)
    written = []
    for name in COMPONENTS:
        path = out / "components" / f"{name}.yaml"
        compiler.Compiler().compile(getattr(components, name), str(path))
        _stable_header(path)
        written.append(path)
    for name in PIPELINES:
        written.append(compile_pipeline(name, out / f"{name}.yaml", kubernetes=kubernetes))
    written += write_runtimes(out)  # the KServe runtime of the serving image
    return written


_DICT_DEFAULT = re.compile(r"^(#\s+\w+: dict \[Default: )(\{.*\})(\])$")


def _sorted(value):
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _stable_header(path: Path) -> None:
    """kfp writes dict defaults into the YAML's header comment in protobuf map order, which
    changes from one process to the next; sort their keys so that compiling is reproducible."""
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break
        match = _DICT_DEFAULT.match(line.rstrip("\n"))
        if match:
            lines[i] = f"{match.group(1)}{_sorted(ast.literal_eval(match.group(2)))!r}{match.group(3)}\n"
    path.write_text("".join(lines))


def _normalise(text: str) -> str:
    """Drop what differs between kfp patch releases but not in meaning (sdkVersion lines)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("sdkVersion:"))


def stale_files(committed: Path) -> list[str]:
    """Files under `committed` that differ from a fresh compile with the default registry."""
    import tempfile

    from loopline.core.images import DEFAULT_REGISTRY

    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_all(Path(tmp), registry=DEFAULT_REGISTRY)
        problems = []
        for path in fresh:
            relative = path.relative_to(tmp)
            old = Path(committed) / relative
            if not old.is_file():
                problems.append(f"{relative}: missing")
            elif _normalise(old.read_text()) != _normalise(path.read_text()):
                problems.append(f"{relative}: stale")
        known = {str(p.relative_to(tmp)) for p in fresh}
        for old in sorted(Path(committed).rglob("*.yaml")):
            if str(old.relative_to(committed)) not in known:
                problems.append(f"{old.relative_to(committed)}: not produced by compile (remove it)")
    return problems


def main() -> int:
    """`python -m loopline.cli.compile --check compiled`: exit 1 when compiled/ is stale."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", metavar="DIR", required=True, help="compiled directory to check")
    args = parser.parse_args()
    problems = stale_files(Path(args.check))
    for line in problems:
        print(f"{args.check}/{line}")
    if problems:
        print("compiled YAML is stale: run `make compile` and commit the result", file=sys.stderr)
        return 1
    print(f"{args.check}/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
