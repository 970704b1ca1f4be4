"""Scale-free and relative metrics: errors against the size of the prices and against the naive
forecast (the card's last observed price strictly before the date).

All are over *scored* rows (a market price and a prediction):

* ``mae``: mean |predicted - market| (price).
* ``wape``: sum |predicted - market| / sum |market|, in percent.
* ``mase``: ``mae`` divided by the mean absolute one-step change of each card's observed prices
  over the fitting rows, pooled across cards (Hyndman & Koehler, m = 1). The naive forecast
  scores exactly 1 on the fitting rows.
* ``skill_vs_naive``: 1 - MAE / MAE of the naive forecast, both over the scored rows that have a
  naive forecast. 0 for the naive forecast itself, 1 for a perfect model.
* ``directional_accuracy``: the share of scored rows with a naive forecast where
  sign(predicted - naive) equals sign(market - naive); rows whose market price equals the naive
  forecast (no change) are left out. A difference within 1e-9 % of the naive price counts as
  none (the threshold policy's tie tolerance), so float noise is no predicted move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pokewatch_core import Metric, NaiveForecast, NaiveSums


@dataclass
class _Relative(Metric):
    """A metric over the naive forecast's sums (``NaiveForecast()``, which reads the run's
    history): the five relative metrics share one pass over the rows."""

    def statistic(self) -> NaiveForecast:
        return NaiveForecast()


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class Mae(_Relative):
    name: ClassVar[str] = "mae"
    description: ClassVar[str] = (
        "Mean absolute error |predicted - market| over scored rows (price)."
    )
    unit: ClassVar[str] = "price"
    greater_is_better: ClassVar[bool | None] = False

    def finalize(self, sums: NaiveSums) -> float:
        return _ratio(sums.abs_error, sums.scored)


@dataclass
class Wape(_Relative):
    name: ClassVar[str] = "wape"
    description: ClassVar[str] = (
        "Weighted absolute percentage error: sum |predicted - market| / sum market (percent)."
    )
    unit: ClassVar[str] = "percent"
    greater_is_better: ClassVar[bool | None] = False

    def finalize(self, sums: NaiveSums) -> float:
        return 100.0 * _ratio(sums.abs_error, sums.market)


@dataclass
class Mase(_Relative):
    name: ClassVar[str] = "mase"
    description: ClassVar[str] = (
        "MAE / mean absolute one-step change of each card's prices over the fitting rows (ratio)."
    )
    unit: ClassVar[str] = "ratio"
    greater_is_better: ClassVar[bool | None] = False

    def finalize(self, sums: NaiveSums) -> float:
        return _ratio(_ratio(sums.abs_error, sums.scored), sums.scale)


@dataclass
class SkillVsNaive(_Relative):
    name: ClassVar[str] = "skill_vs_naive"
    description: ClassVar[str] = (
        "1 - MAE / MAE of the naive last-price forecast on the same rows (ratio)."
    )
    unit: ClassVar[str] = "ratio"
    greater_is_better: ClassVar[bool | None] = True

    def finalize(self, sums: NaiveSums) -> float:
        return 1.0 - _ratio(sums.abs_error_with_naive, sums.naive_abs_error)


@dataclass
class DirectionalAccuracy(_Relative):
    name: ClassVar[str] = "directional_accuracy"
    description: ClassVar[str] = (
        "Share of scored rows where the predicted move from the last price has the sign of the "
        "actual move; rows with no move left out (fraction)."
    )
    unit: ClassVar[str] = "fraction"
    greater_is_better: ClassVar[bool | None] = True

    def finalize(self, sums: NaiveSums) -> float:
        return _ratio(sums.same_direction, sums.moved)


RELATIVE_METRICS: tuple[type[Metric], ...] = (Mae, Wape, Mase, SkillVsNaive, DirectionalAccuracy)
