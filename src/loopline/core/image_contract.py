"""What each image installs, and a guard that keeps a step to its image's packages.

`containers/Dockerfile` names the packages of each role's target (plus the shared `common`
stage); with the lock's dependency closure (read from the installed distributions' metadata)
that gives the distributions an image holds. `contract(...)` turns it into the top-level modules
a step on that image must not import; `install_guard()` (run from the `sitecustomize` module of
`loopline/image_contract_site/` when a kfp.local step starts) makes such an import fail the way
it fails in the image, naming the step, the module and the image. Standard library only.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

CONTRACT_ENV = "LOOPLINE_IMAGE_CONTRACT"  # path of the JSON contract written by write_contract()
SITE_DIR = Path(__file__).with_name("image_contract_site")
# In every image besides what the Dockerfile names: the project, and the venv's own pip and setuptools.
ALWAYS_THERE = {"loopline", "pip", "setuptools"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dockerfile_packages(text: str) -> dict[str, list[str]]:
    """Packages each build target installs, inherited stages included: {"trainer": [...], ...}."""
    stages: dict[str, list[str]] = {}
    parents: dict[str, str] = {}
    current = ""
    for block in re.split(r"\n(?=FROM\s)", text):
        head = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", block, flags=re.I)
        if head:
            current = head.group(2) or head.group(1)
            parents[current] = head.group(1)
            stages.setdefault(current, [])
        for install in re.findall(r"pip install [^\n]*-c requirements\.lock((?:[^\n]*\\\n)+[^\n]*)", block):
            stages[current] += [p.lower() for p in re.findall(r"^\s+([A-Za-z][\w.\[\],-]*)\s*\\?$", install, flags=re.M)]
    resolved: dict[str, list[str]] = {}
    for stage in stages:
        chain, name = [], stage
        while name in stages:
            chain.insert(0, name)
            name = parents[name]
        resolved[stage] = [p for s in chain for p in stages[s]]
    return resolved


def closure(packages: list[str]) -> set[str]:
    """The distributions `pip install <packages>` brings in, from the installed metadata (= the lock)."""
    from packaging.requirements import (
        Requirement,  # ships with pip and setuptools; pinned in the lock
    )

    seen: set[tuple[str, frozenset]] = set()
    todo = [Requirement(p) for p in packages]
    names: set[str] = set()
    while todo:
        requirement = todo.pop()
        name, extras = _norm(requirement.name), frozenset(_norm(e) for e in requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            dependency = Requirement(text)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append(dependency)
    return names


def refused_modules(allowed: set[str]) -> list[str]:
    """Top-level modules that only distributions outside `allowed` provide (stdlib excluded)."""
    allowed = allowed | ALWAYS_THERE
    refused = []
    for module, dists in metadata.packages_distributions().items():
        if module in sys.stdlib_module_names or module.startswith("_") and module[1:] in sys.stdlib_module_names:
            continue
        if not any(_norm(d) in allowed for d in dists):
            refused.append(module)
    return sorted(refused)


def contract(dockerfile: Path, step_images: dict[str, str]) -> dict[str, dict]:
    """{step function: {"image": ref, "refused": [modules]}} for steps whose image names a role."""
    targets = dockerfile_packages(dockerfile.read_text())
    by_role: dict[str, list[str]] = {}
    out: dict[str, dict] = {}
    for step, ref in step_images.items():
        role = re.sub(r"^loopline-", "", ref.rsplit("/", 1)[-1].split(":")[0])
        if role not in targets:
            raise KeyError(f"{step}: image {ref} has no target '{role}' in {dockerfile}")
        if role not in by_role:
            by_role[role] = refused_modules(closure(targets[role]))
        out[step] = {"image": ref, "refused": by_role[role]}
    return out


def write_contract(path: Path, dockerfile: Path, step_images: dict[str, str], report: Path) -> dict[str, str]:
    """Write the contract; return the environment that makes kfp.local steps honour it."""
    path.write_text(json.dumps({"report": str(report), "steps": contract(dockerfile, step_images)}))
    pythonpath = os.pathsep.join(p for p in (str(SITE_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {CONTRACT_ENV: str(path), "PYTHONPATH": pythonpath}


def _step_from_argv(argv: list[str]) -> str:
    for flag in ("--function_to_execute", "--function-to-execute"):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return argv[argv.index(flag) + 1]
    return ""


class _Guard:
    def __init__(self, step: str, image: str, refused: set[str], report: str):
        self.step, self.image, self.refused, self.report = step, image, refused, report

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top not in self.refused:
            return None
        message = f"step {self.step} imports '{top}', which its image {self.image} does not install"
        if self.report:
            with open(self.report, "a") as f:
                f.write(json.dumps({"step": self.step, "module": top, "image": self.image, "imported": fullname}) + "\n")
        raise ModuleNotFoundError(message, name=top)


def install_guard(argv: list[str] | None = None) -> bool:
    """Refuse, in this process, imports that the running step's image could not satisfy."""
    path = os.environ.get(CONTRACT_ENV)
    step = _step_from_argv(sys.argv if argv is None else argv)
    if not path or not step:
        return False
    spec = json.loads(Path(path).read_text())
    entry = spec["steps"].get(step)
    if entry is None:
        return False
    refused = set(entry["refused"])
    already = sorted(m for m in refused if m in sys.modules)
    if already:  # imported before the guard (by site-packages .pth files): the image lacks them too
        raise ModuleNotFoundError(f"step {step}: {', '.join(already)} loaded before the image contract guard")
    sys.meta_path.insert(0, _Guard(step, entry["image"], refused, spec.get("report", "")))
    return True
