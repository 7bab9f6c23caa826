"""Pipeline parameters checked against the compiled inputs; cron checked and converted."""

from __future__ import annotations

import pytest

from loopline.ops import cron, params
from loopline.ops.cron import CronError
from loopline.ops.params import ParameterError

from .conftest import ROOT

TRAINING = ROOT / "compiled" / "training.yaml"


@pytest.fixture(scope="module")
def training():
    return params.read_pipeline(TRAINING)


def test_inputs_are_read_with_their_types_and_required_flags(training):
    assert training.name == "loopline-training"
    assert training.inputs["n_trials"].type == "NUMBER_INTEGER" and not training.inputs["n_trials"].required
    assert training.inputs["data_uri"].required and training.inputs["thresholds"].type == "STRUCT"
    assert training.platform is None


def test_param_text_is_converted_to_each_type(training, tmp_path):
    values = params.check(
        training,
        from_file={"data_uri": "s3://b/a.csv", "target": "y", "tracking_uri": "http://m", "timeout_seconds": 60},
        assignments={"n_trials": "8", "thresholds": '{"roc_auc": 0.8}', "ignore_columns": "id,ts", "seed": "7",
                     "target": "label"},
    )
    assert values == {"data_uri": "s3://b/a.csv", "target": "label", "tracking_uri": "http://m", "timeout_seconds": 60.0,
                      "n_trials": 8, "thresholds": {"roc_auc": 0.8}, "ignore_columns": ["id", "ts"], "seed": 7}


@pytest.mark.parametrize(
    "file_values, assignments, message",
    [
        ({}, {"n_trails": "8"}, "has no parameter 'n_trails'; did you mean 'n_trials'?"),
        ({}, {"n_trials": "eight"}, "parameter 'n_trials' of loopline-training expects an integer, got 'eight' (--param)"),
        ({"n_trials": 2.5}, {}, "expects an integer, got '2.5' (parameters file)"),
        ({"target": True}, {}, "parameter 'target' of loopline-training expects a string"),
        ({}, {"thresholds": "[1, 2]"}, "parameter 'thresholds' of loopline-training expects a mapping"),
        ({}, {"thresholds": "{roc"}, "expects a mapping (JSON object), got '{roc'"),
        ({}, {"deploy_target": "cloud"}, "parameter 'deploy_target' of loopline-training must be one of 'local', 'kserve'"),
    ],
)
def test_bad_parameters_are_one_line_errors(training, file_values, assignments, message):
    base = {"data_uri": "a.csv", "target": "y", "tracking_uri": "http://m"}
    with pytest.raises(ParameterError) as info:
        params.check(training, from_file={**base, **file_values}, assignments=assignments,
                     allowed={"deploy_target": ("local", "kserve")})
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_required_parameters_are_named(training):
    with pytest.raises(ParameterError, match=r"needs parameters data_uri, tracking_uri \(give them with --param"):
        params.check(training, assignments={"target": "y"})


def test_assignments_and_params_file_errors(tmp_path):
    with pytest.raises(ParameterError, match="--param 'n_trials' is not NAME=VALUE"):
        params.parse_assignments(["n_trials"])
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ParameterError, match="must hold a mapping of NAME: VALUE, not a list"):
        params.load_params_file(listed)
    with pytest.raises(ParameterError, match="compiled pipeline not found"):
        params.read_pipeline(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "text, kfp, vertex",
    [
        ("0 3 * * 1", "0 0 3 * * 1", "0 3 * * 1"),
        ("*/15 9-17 * * MON-FRI", "0 */15 9-17 * * MON-FRI", "*/15 9-17 * * MON-FRI"),
        ("0 0 * * 5-7", "0 0 0 * * 0,5,6", "0 0 * * 5-7"),
        ("@daily", "0 0 0 * * *", "0 0 * * *"),
        ("30 6 1,15 JAN,jul *", "0 30 6 1,15 JAN,jul *", "30 6 1,15 JAN,jul *"),
    ],
)
def test_standard_cron_is_converted_for_kfp(text, kfp, vertex):
    expression = cron.parse(text)
    assert expression.for_kfp() == kfp and expression.for_vertex() == vertex


def test_time_zone_prefix_is_for_vertex_only():
    expression = cron.parse("TZ=Europe/Berlin 0 3 * * 1")
    assert expression.for_vertex() == "TZ=Europe/Berlin 0 3 * * 1"
    assert cron.parse("CRON_TZ=America/New_York 0 3 * * *").for_vertex() == "TZ=America/New_York 0 3 * * *"
    with pytest.raises(CronError, match="is for Vertex AI schedules only"):
        expression.for_kfp()


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0 3 * * 1", "has 6 fields; write the standard 5"),
        ("0 3 * *", "has 4 fields"),
        ("61 * * * *", "minute 61 is outside 0-59"),
        ("0 0 ? * 1", "'?' is not standard cron"),
        ("0 0 * FOO *", "'foo' is not a valid month"),
        ("0 5-2 * * *", "runs backwards"),
        ("TZ=Mars/Base 0 0 * * *", "'Mars/Base' is not an IANA time zone"),
        ("@fortnightly", "not a known macro"),
    ],
)
def test_bad_cron_is_a_one_line_error(text, message):
    with pytest.raises(CronError, match=message):
        cron.parse(text)


def _fires(kfp_cron: str, start, days: int) -> list:
    """When a 6-field, seconds-first cron of plain values and '*' fires, minute by minute over `days`."""
    from datetime import timedelta

    second, minute, hour, dom, month, dow = kfp_cron.split()
    assert second == "0" and "*" == dom == month, kfp_cron  # what the defaults use; anything else fails here

    def match(field: str, value: int) -> bool:
        return field == "*" or value in {int(v) for v in field.split(",")}

    times = (start + timedelta(minutes=m) for m in range(days * 24 * 60))
    return [t for t in times if match(minute, t.minute) and match(hour, t.hour) and match(dow, t.isoweekday() % 7)]


@pytest.mark.parametrize(("pipeline", "every_days", "hour"), [("training", 7, 3), ("drift_monitor", 1, 2)])
def test_default_schedules_follow_common_practice(kfp_api, pipeline, every_days, hour):
    """`loopline schedule` without --cron: training weekly on Mondays, the drift monitor daily,
    both at night (UTC); read from the cron sent to KFP."""
    from datetime import UTC, datetime

    from loopline.cli import app as cli

    data = {"training": ["data_uri=s3://d/train.csv"],
            "drift_monitor": ["reference_data_uri=s3://d/ref.csv", "current_data_uri=s3://d/cur.csv"]}[pipeline]
    args = [a for value in [*data, "target=is_fraud", "tracking_uri=http://mlflow:5000"] for a in ("--param", value)]
    assert cli.main(["schedule", "--pipeline", pipeline, "--kfp-host", kfp_api.url, *args]) == 0
    (request,) = kfp_api.find("POST", "/recurringruns")
    sent = request.body["trigger"]["cron_schedule"]["cron"]
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    fires = _fires(sent, monday, days=14)
    assert len(fires) == 14 // every_days, (sent, fires)
    assert all(t.hour == hour and t.minute == 0 for t in fires), (sent, fires)
    assert all((b - a).days == every_days for a, b in zip(fires, fires[1:], strict=False)), (sent, fires)
    if pipeline == "training":
        assert {t.strftime("%A") for t in fires} == {"Monday"}
