"""Gate rules for CI/CD: does a candidate's evaluation beat the champion's on the same data?

A rule is ``METRIC OP VALUE`` with OP one of ``<=``, ``>=``, ``<``, ``>``, and VALUE a number,
``champion`` (the champion's value of the same metric), ``F*champion`` / ``champion*F``, or
``champion+D`` / ``champion-D``:

    rmse<=1.02*champion        # at most 2 % worse than the champion
    strategy_sharpe>=0.5       # an absolute floor
    skill_vs_naive>champion

A NaN on either side fails the rule. With no champion yet, rules that refer to it pass
(absolute rules still apply).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pokewatch_core.errors import ConfigError

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RULE = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w.]*)\s*(?P<op><=|>=|<|>)\s*(?P<rhs>.+?)\s*$")
_SCALED = re.compile(rf"^(?:(?P<a>{_NUMBER})\s*\*\s*champion|champion\s*\*\s*(?P<b>{_NUMBER}))$")
_SHIFTED = re.compile(rf"^champion\s*(?P<sign>[-+])\s*(?P<d>{_NUMBER})$")


@dataclass(frozen=True)
class Rule:
    """One parsed rule: ``metric op factor * champion + offset`` (or ``op offset``)."""

    text: str
    metric: str
    op: str
    factor: float | None  # None: an absolute rule (no champion)
    offset: float

    def threshold(self, champion: float | None) -> float | None:
        """The value the candidate is compared with (None: no champion to compare with)."""
        if self.factor is None:
            return self.offset
        if champion is None:
            return None
        return self.factor * champion + self.offset

    def check(self, candidate: float, champion: float | None) -> Verdict:
        """The verdict for the candidate's and the champion's values of ``metric``."""
        bound = self.threshold(champion)
        if bound is None:
            return Verdict(self, candidate, champion, None, True, "no champion yet")
        if math.isnan(candidate) or math.isnan(bound):
            return Verdict(self, candidate, champion, bound, False, "undefined (NaN)")
        passed = _OPERATORS[self.op](candidate, bound)
        return Verdict(self, candidate, champion, bound, passed, "")


@dataclass(frozen=True)
class Verdict:
    """A rule's outcome."""

    rule: Rule
    candidate: float
    champion: float | None
    threshold: float | None
    passed: bool
    note: str


def parse_rule(text: str) -> Rule:
    """Parse ``METRIC OP VALUE`` (see the module docstring); ``ConfigError`` if malformed."""
    match = _RULE.match(text)
    if not match:
        raise ConfigError(
            f"rule {text!r}: expected METRIC OP VALUE, e.g. 'rmse<=1.02*champion' or "
            "'strategy_sharpe>=0.5'"
        )
    metric, op, rhs = match["metric"], match["op"], match["rhs"].replace(" ", "")
    numbers = re.findall(_NUMBER, rhs)
    if any(not math.isfinite(float(n)) for n in numbers):
        raise ConfigError(f"rule {text!r}: numbers must be finite")
    if re.fullmatch(_NUMBER, rhs):
        return Rule(text, metric, op, None, float(rhs))
    if rhs == "champion":
        return Rule(text, metric, op, 1.0, 0.0)
    scaled = _SCALED.match(rhs)
    if scaled:
        return Rule(text, metric, op, float(scaled["a"] or scaled["b"]), 0.0)
    shifted = _SHIFTED.match(rhs)
    if shifted:
        delta = float(shifted["d"]) * (-1.0 if shifted["sign"] == "-" else 1.0)
        return Rule(text, metric, op, 1.0, delta)
    raise ConfigError(
        f"rule {text!r}: the value must be a number, champion, F*champion or champion+-D"
    )


def check_rules(
    rules: Sequence[Rule],
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
) -> list[Verdict]:
    """Every rule's verdict; a rule on a metric the candidate lacks is a ``ConfigError``."""
    verdicts = []
    for rule in rules:
        if rule.metric not in candidate:
            present = ", ".join(sorted(candidate)) or "none"
            raise ConfigError(f"rule {rule.text!r}: no metric {rule.metric!r} (present: {present})")
        theirs = None if champion is None else champion.get(rule.metric, math.nan)
        verdicts.append(rule.check(candidate[rule.metric], theirs))
    return verdicts
