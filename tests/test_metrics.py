"""The metric protocol parser: every accepted form, last match wins, clear problems."""

from __future__ import annotations

import math

import pytest

from ratchet.metrics import MetricParser, ProgressPoint, parse_output


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("val_bpb: 0.9979", 0.9979),
        ("  val_bpb:0.5  ", 0.5),
        ("val_bpb: 3", 3.0),
        ("val_bpb: -1.5e-3", -1.5e-3),
        ("val_bpb: +2E4", 2e4),
        ("val_bpb: .25", 0.25),
        ("METRIC:val_bpb=0.75", 0.75),
        ("  metric: val_bpb = 1e2 ", 100.0),
        ('{"val_bpb": 0.125}', 0.125),
        ('{"step": 10, "val_bpb": 7}', 7.0),
        ("50%|#####     |\rval_bpb: 0.5", 0.5),
    ],
)
def test_every_form_of_the_final_metric(line: str, value: float) -> None:
    parsed = parse_output(f"starting\n{line}\ndone\n", "val_bpb")
    assert parsed.metric == pytest.approx(value) and parsed.problem is None


def test_last_match_wins_across_forms() -> None:
    text = 'mse: 3\nMETRIC:mse=2\n{"mse": 1.5}\n'
    assert parse_output(text, "mse").metric == 1.5


@pytest.mark.parametrize("spelling", ["nan", "NaN", "inf", "-inf", "Infinity", "+INF"])
def test_non_finite_last_value_is_a_problem(spelling: str) -> None:
    parsed = parse_output(f"mse: 0.5\nmse: {spelling}\n", "mse")
    assert parsed.metric is None
    assert parsed.problem.startswith("metric mse is ") and "not a finite number" in parsed.problem


def test_json_nan_is_a_problem() -> None:
    parsed = parse_output('{"mse": NaN}', "mse")
    assert parsed.metric is None and parsed.problem == "metric mse is nan, not a finite number"


def test_missing_metric_names_it() -> None:
    parsed = parse_output("loss: 2.0\nval_loss 1.0\n", "mse")
    assert parsed.metric is None
    assert parsed.problem == (
        "no line 'mse: VALUE' (or METRIC:mse=VALUE, or a JSON line with \"mse\") in the output"
    )


def test_name_is_exact() -> None:
    assert parse_output("MSE: 1\nmse_avg: 2\n", "mse").metric is None


def test_extras_are_whole_summary_lines_last_wins() -> None:
    text = "\n".join(
        [
            "step 5 (loss: 2.3)",
            "training_seconds: 300.1",
            "peak_vram_mb: 45060.2",
            "training_seconds: 301",
            "val_bpb: 0.99",
            "METRIC:mfu=39.8",
            "note: fast",
            "weird: nan",
            "Epoch 3: 0.5",
        ]
    )
    parsed = parse_output(text, "val_bpb")
    assert parsed.metric == 0.99
    assert parsed.extras == {"training_seconds": 301.0, "peak_vram_mb": 45060.2, "mfu": 39.8}


def test_json_metric_line_brings_its_numeric_extras() -> None:
    parsed = parse_output('{"mse": 0.1, "seconds": 2, "ok": true, "tag": "x"}', "mse")
    assert parsed.metric == 0.1 and parsed.extras == {"seconds": 2.0}


def test_progress_lines_are_points_in_order() -> None:
    parser = MetricParser("mse")
    first = parser.feed('{"progress": 0.25, "val_loss": 2.31, "note": "x"}')
    assert first == ProgressPoint(progress=0.25, values={"val_loss": 2.31})
    assert parser.feed("hello") is None
    parser.feed('{"progress": 0.5, "val_loss": NaN}')
    parser.feed("mse: 0.5")
    parsed = parser.result()
    assert parsed.metric == 0.5 and [p.progress for p in parsed.progress] == [0.25, 0.5]
    assert math.isnan(parsed.progress[1].values["val_loss"])


def test_progress_line_with_the_metric_is_only_progress() -> None:
    parsed = parse_output('{"progress": 1.0, "mse": 0.2}\n', "mse")
    assert parsed.metric is None and parsed.progress[0].values == {"mse": 0.2}
    assert '"progress"' in parsed.problem


def test_progress_after_the_metric_does_not_replace_it() -> None:
    parsed = parse_output('mse: 0.3\n{"progress": 1.0, "mse": 0.2}\n', "mse")
    assert parsed.metric == 0.3


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "{",
        '{"mse": }',
        "[1, 2, 3]",
        '{"progress": "half"}',
        '{"progress": true}',
        '{"progress": NaN}',
        '{"mse": "0.5"}',
        '{"mse": 1' + "0" * 400 + "}",
        "{" + "[" * 100_000 + "}",
        "\x00\xff\ufffd",
        "mse: 1.2.3",
        "mse: 0x10",
        "x" * 200_000,
    ],
)
def test_garbage_lines_never_raise(line: str) -> None:
    parser = MetricParser("mse")
    assert parser.feed(line) is None
    assert parser.result().metric is None or math.isfinite(parser.result().metric)


def test_huge_json_integer_is_infinite_not_an_error() -> None:
    parsed = parse_output('{"mse": 1' + "0" * 400 + "}", "mse")
    assert parsed.metric is None and "inf" in parsed.problem


def test_result_can_be_read_while_streaming() -> None:
    parser = MetricParser("mse")
    parser.feed("mse: 1")
    assert parser.result().metric == 1.0
    parser.feed("mse: 2")
    assert parser.result().metric == 2.0
