"""Component READMEs cannot drift from the components: their input/output tables are generated
(`make docs`), and this test fails when a committed README differs."""

from __future__ import annotations

import importlib

from loopline import components
from tools import docs


def test_component_readmes_match_the_components():
    assert docs.stale_readmes() == []


def test_every_component_readme_has_the_generated_tables_and_names_its_executor():
    for name in components.__all__:
        text = docs.readme_path(name).read_text()
        assert docs.BEGIN in text and docs.END in text, name
        assert f"src/loopline/executors/{name}.py" in text, name


def test_a_changed_docstring_makes_the_readme_stale(monkeypatch):
    # the package as imported now: compiling with another image registry imports it afresh
    spec = importlib.import_module("loopline.components").load_data.component_spec
    monkeypatch.setattr(spec.inputs["seed"], "description", "A different description.")
    assert any(path.endswith("load_data/README.md") for path in docs.stale_readmes())
