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


def _readme_table() -> str:
    text = docs.project_readme_path().read_text()
    return text.split(docs.TABLE_BEGIN, 1)[1].split(docs.TABLE_END, 1)[0]


def test_the_readme_component_table_lists_every_component_with_its_image():
    rows = {line.split("`")[1]: line for line in _readme_table().splitlines() if line.startswith("| [`")}
    assert list(rows) == components.__all__  # in the order of the loop
    for name, line in rows.items():
        assert f"](components/{name}/README.md)" in line, name
    # the roles of containers/README.md's table
    assert rows["load_data"].endswith("| `base` |") and rows["trigger_training"].endswith("| `base` |")
    assert rows["train_model"].endswith("| `trainer` |") and rows["batch_predict"].endswith("| `trainer` |")
    assert rows["deploy_model"].endswith("| `deployer` |")
    assert "golden holdout" in rows["evaluate_model"]  # the first line of the component's docstring


def test_a_changed_docstring_makes_the_readme_table_stale(monkeypatch):
    func = importlib.import_module("loopline.components").validate_data.python_func
    monkeypatch.setattr(func, "__doc__", "Checks nothing at all.\n\n    More text.\n    ")
    assert str(docs.project_readme_path()) in docs.stale_readmes()
    assert "| Checks nothing at all. |" in docs.render_project_readme(docs.project_readme_path().read_text())


def test_make_docs_writes_the_readme_table_and_refuses_a_readme_without_markers(tmp_path, monkeypatch, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{docs.TABLE_BEGIN}\nold rows\n{docs.TABLE_END}\n\nafter\n")
    monkeypatch.setattr(docs, "project_readme_path", lambda: readme)
    assert docs.main(["--check"]) == 1
    assert docs.main([]) == 0
    assert docs.main(["--check"]) == 0
    text = readme.read_text()
    assert "old rows" not in text and "[`deploy_model`](components/deploy_model/README.md)" in text
    assert text.startswith("# Title\n\n") and text.endswith("\n\nafter\n")
    readme.write_text("# Title without the markers\n")
    assert docs.main([]) == 2
    assert "loopline: error: README.md: no <!-- components:begin -->" in capsys.readouterr().err
    assert readme.read_text() == "# Title without the markers\n"
