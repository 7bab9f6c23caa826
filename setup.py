"""Package discovery (the rest of the metadata is in pyproject.toml).

The library lives in src/loopline; the KFP components, the pipelines and the compiled YAML keep
their top-level folders but install under the project's own import root (never as top-level
`components` or `pipelines`). Every package under those roots is found, so a new component is
one folder under components/.
"""

from setuptools import find_packages, setup

ROOTS = {
    "loopline": "src/loopline",
    "loopline.components": "components",
    "loopline.pipelines": "pipelines",
    "loopline.compiled": "compiled",
}

setup(
    package_dir=ROOTS,
    packages=[f"{root}.{found}" if found else root for root, folder in ROOTS.items()
              for found in ["", *find_packages(folder)]],
)
