"""What a user's `pip install loopline` (and every image) gets: the library, the components, the
pipelines and the compiled YAML, and none of the development tools (benchmarks, stand-ins, the
rehearsal, the README generator), which stay in the repository's tools/ and tests/."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_the_wheel_holds_the_library_and_no_development_tool(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("loopline-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(n.removesuffix(".py").replace("/", ".") for n in names if n.endswith(".py"))
    print(f"{len(modules)} modules in {wheel.name}:", *modules, sep="\n  ")
    assert {m.split(".")[0] for m in modules} == {"loopline"}
    developer_only = [m for m in modules if any(w in m for w in ("bench", "standin", "rehearsal", "tools", "tests"))]
    assert developer_only == []
    assert "loopline.docs" not in modules
    for needed in ("loopline.cli.app", "loopline.serving.server", "loopline.components.deploy_model.component",
                   "loopline.pipelines.drift_monitor", "loopline.executors.deploy_model"):
        assert needed in modules
    # data files a run needs: the compiled pipelines (a drift-triggered run submits them) and the image guard
    assert "loopline/compiled/training.yaml" in names
    assert "loopline/core/image_contract_site/sitecustomize.py" in names
    assert "loopline/components/deploy_model/rbac.yaml" in names
