"""Parameter domains: one set of rules, checked before any work by `loopline run`, by
`submit`/`schedule --dry-run`, by a drift-triggered submission and by the steps themselves."""

from __future__ import annotations

import json

import pytest

from loopline.cli.app import main
from loopline.core.errors import LooplineError
from loopline.data.demo import demo_transactions
from loopline.ops import domains, reruns

from .conftest import ROOT

TRAINING = ["--param", "data_uri=s3://data/train.csv", "--param", "target=is_fraud", "--param",
            "tracking_uri=http://mlflow.example:5000"]
MONITOR = ["--param", "current_data_uri=s3://data/current.csv", "--param", "reference_data_uri=s3://data/train.csv",
           "--param", "target=is_fraud", "--param", "tracking_uri=http://mlflow.example:5000"]
CASES = [
    ("submit", "training", TRAINING + ["--param", "n_trials=-3"], "n_trials must be a whole number of at least 1, got -3"),
    ("submit", "training", TRAINING + ["--param", "thresholds={}"], "no gate thresholds configured"),
    ("submit", "training", TRAINING + ["--param", 'thresholds={"roc_acu": 0.8}'],
     "gate threshold: 'roc_acu' is not a metric Loopline computes; did you mean 'roc_auc'?"),
    ("submit", "training", TRAINING + ["--param", "objective=auc"], "objective 'auc' is not one of roc_auc"),
    ("submit", "training", TRAINING + ["--param", "max_epochs=0"], "max_epochs must be at least 1"),
    ("submit", "drift_monitor", MONITOR + ["--param", "drift_share=-0.5"], "drift_share must be in (0, 1], got -0.5"),
    ("submit", "drift_monitor", MONITOR + ["--param", "escalation_threshold=0.3"],
     "escalation_threshold (0.3) must be above drift_share (0.5)"),
    ("submit", "drift_monitor", MONITOR + ["--param", "cooldown_hours=-1"], "cooldown_hours must be 0 or more, got -1"),
    ("schedule", "training", TRAINING + ["--max-concurrency", "0"], "max_concurrency must be in [1, ∞), got 0"),
]


@pytest.mark.parametrize(("command", "pipeline", "args", "message"), CASES, ids=[c[3][:40] for c in CASES])
def test_dry_run_refuses_values_outside_their_domain(command, pipeline, args, message, capsys, kfp_api):
    code = main([command, "--pipeline", pipeline, "--compiled", str(ROOT / "compiled"), "--kfp-host", kfp_api.url,
                 "--dry-run", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("loopline: error: ") and message in err[-1], err
    assert not kfp_api.find("POST", "/runs") and not kfp_api.find("POST", "/recurringruns")


def test_dry_run_accepts_the_defaults(capsys, kfp_api):
    code = main(["submit", "--pipeline", "training", "--compiled", str(ROOT / "compiled"), "--kfp-host", kfp_api.url,
                 "--dry-run", *TRAINING])
    assert code == 0 and capsys.readouterr().out.startswith("checked: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--thresholds", json.dumps({"roc_acu": 0.8})], "'roc_acu' is not a metric Loopline computes"),
        (["--trials", "-3"], "n_trials must be a whole number of at least 1, got -3"),
        (["--drift-share", "-0.5"], "drift_share must be in (0, 1], got -0.5"),
        (["--max-epochs", "0"], "max_epochs must be at least 1, got 0"),
    ],
)
def test_run_refuses_bad_settings_before_training(args, message, capsys, tmp_path):
    data = tmp_path / "data.csv"
    demo_transactions(300, seed=1).to_csv(data, index=False)
    home = tmp_path / "home"
    code = main(["run", "--home", str(home), "--data", str(data), "--target", "is_fraud", "--ignore", "transaction_id",
                 *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert not (home / "pipeline_root").exists() and not (home / "mlflow.db").exists()


def test_the_evaluate_step_gives_the_same_line_for_a_misspelt_metric(trained_model, loaded, tmp_path):
    from .conftest import evaluate_step

    with pytest.raises(LooplineError) as info:
        evaluate_step(trained_model, loaded, tmp_path, {"roc_acu": 0.8})
    assert str(info.value) == "gate threshold: 'roc_acu' is not a metric Loopline computes; did you mean 'roc_auc'?"


def test_a_drift_triggered_submission_checks_the_training_arguments_first(kfp_api, tmp_path):
    from types import SimpleNamespace

    from loopline.executors import trigger_training

    arguments = {"data_uri": "s3://d.csv", "target": "is_fraud", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "n_trials": -3,
                 "thresholds": {"roc_auc": 0.8}}
    with pytest.raises(LooplineError, match="n_trials must be a whole number of at least 1, got -3"):
        trigger_training.run(arguments=arguments, settings=reruns.RetrainSettings(rerun_target="kfp", kfp_host=kfp_api.url),
                             monitor_run="monitor-1", summary=SimpleNamespace(path=str(tmp_path / "s"), metadata={}),
                             reason_path=str(tmp_path / "r"), run_path=str(tmp_path / "p"))
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seed": -1}, "seed must be in [0, ∞), got -1"),
        ({"validation_fraction": 0.5}, "validation_fraction must be between 0 and 0.5, got 0.5"),
        ({"deploy_target": "cluster"}, "deploy_target: target must be one of 'local', 'kserve', 'vertex', got 'cluster'"),
        ({"rerun_mode": "now"}, "rerun_mode must be 'nested' or 'submit', got 'now'"),
        ({"rerun_target": "aws"}, "rerun_target must be one of 'kfp', 'vertex', got 'aws'"),
        ({"canary_percent": 100}, "canary_percent must be in [1, 99], got 100"),
        ({"numeric_test": "t"}, "numeric_test 't' is not one of"),
        ({"pruner": "none-such"}, "pruner 'none-such' is not one of"),
        ({"thresholds": {"relative": {"primary": "auc", "min_improvement": 0}}}, "relative.primary: 'auc' is not"),
    ],
)
def test_each_rule_names_its_parameter(values, message):
    with pytest.raises(LooplineError) as info:
        domains.check(values)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_values_inside_their_domains_pass():
    domains.check({"n_trials": 1, "max_epochs": 1, "seed": 0, "drift_share": 1.0, "escalation_threshold": 1.0,
                   "thresholds": {"roc_auc": 0.7, "recall_1": 0.2}, "cooldown_hours": 0, "canary_percent": 10,
                   "objective": "log_loss", "deploy_target": "kserve", "rerun_mode": "submit"})
