"""Gate rules: parsing, thresholds, verdicts (NaN fails; no champion passes champion rules)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pokewatch_core import ConfigError
from pokewatch_core.tracking.gate_rules import check_rules, parse_rule


@pytest.mark.parametrize(
    ("text", "metric", "op", "factor", "offset"),
    [
        ("rmse<=1.02*champion", "rmse", "<=", 1.02, 0.0),
        ("rmse <= champion * 1.02", "rmse", "<=", 1.02, 0.0),
        ("strategy_sharpe>=0.5", "strategy_sharpe", ">=", None, 0.5),
        ("skill_vs_naive>champion", "skill_vs_naive", ">", 1.0, 0.0),
        ("mape<champion-0.1", "mape", "<", 1.0, -0.1),
        ("turnover<=champion+1e-3", "turnover", "<=", 1.0, 0.001),
        ("policy.x>=-2", "policy.x", ">=", None, -2.0),
    ],
)
def test_rules_parse(text, metric, op, factor, offset):
    rule = parse_rule(text)
    assert (rule.metric, rule.op, rule.factor) == (metric, op, factor)
    assert rule.offset == pytest.approx(offset)


@pytest.mark.parametrize(
    "text",
    [
        "rmse",
        "rmse=1",
        "rmse<=",
        "<=1",
        "rmse<=2*chump",
        "rmse<=champion**2",
        "rmse=>1",
        "rmse<1e309",
        "rmse<=1e999*champion",
    ],
)
def test_malformed_rules_are_usage_errors(text):
    with pytest.raises(ConfigError, match="rule"):
        parse_rule(text)


def test_verdicts():
    rules = [parse_rule(r) for r in ("rmse<=1.02*champion", "strategy_sharpe>=0.5")]
    better = check_rules(rules, {"rmse": 1.0, "strategy_sharpe": 0.7}, {"rmse": 1.0})
    assert [v.passed for v in better] == [True, True]
    assert better[0].threshold == pytest.approx(1.02)
    worse = check_rules(rules, {"rmse": 1.1, "strategy_sharpe": 0.4}, {"rmse": 1.0})
    assert [v.passed for v in worse] == [False, False]
    nan = check_rules(rules, {"rmse": math.nan, "strategy_sharpe": 0.7}, {"rmse": 1.0})
    assert not nan[0].passed and "NaN" in nan[0].note
    first = check_rules(rules, {"rmse": 9.0, "strategy_sharpe": 0.1}, None)
    assert first[0].passed and first[0].note == "no champion yet"
    assert not first[1].passed  # absolute rules still apply
    with pytest.raises(ConfigError, match="no metric 'mae'"):
        check_rules([parse_rule("mae<=1")], {"rmse": 1.0}, None)


finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(candidate=finite, champion=finite, factor=st.floats(0.5, 2.0))
def test_le_and_gt_are_complements(candidate, champion, factor):
    le = parse_rule(f"m<={factor!r}*champion").check(candidate, champion)
    gt = parse_rule(f"m>{factor!r}*champion").check(candidate, champion)
    assert le.passed != gt.passed
