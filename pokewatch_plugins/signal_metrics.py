"""Signal-quality and strategy metrics: fields of the analyses of ``pokewatch_core.analysis.core``
(definitions there). The metrics of one horizon share one quality state, those of one fee one
strategy state, so each is computed once per evaluation and merges exactly across partitions."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from pokewatch_core import Metric, QualityState, StrategyState, quality_state, strategy_state


@dataclass
class _SignalQualityMetric(Metric):
    """The field of the signal quality at ``horizon`` that the metric is named after."""

    unit: ClassVar[str] = "fraction"
    greater_is_better: ClassVar[bool | None] = True
    horizon: int = 1

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")

    def state(self, frame: pd.DataFrame) -> QualityState:
        return quality_state(frame, self.horizon)

    def merge(self, a: QualityState, b: QualityState) -> QualityState:
        return a.merge(b)

    def finalize(self, state: QualityState) -> float:
        return float(getattr(state.finalize(), self.name))

    def state_key(self) -> Hashable:
        return QualityState.key(self.horizon)


@dataclass
class BuyPrecision(_SignalQualityMetric):
    name: ClassVar[str] = "buy_precision"
    description: ClassVar[str] = (
        "Share of BUY rows whose price `horizon` observations later is higher (fraction)."
    )


@dataclass
class SellPrecision(_SignalQualityMetric):
    name: ClassVar[str] = "sell_precision"
    description: ClassVar[str] = (
        "Share of SELL rows whose price `horizon` observations later is lower (fraction)."
    )


@dataclass
class BuyRecall(_SignalQualityMetric):
    name: ClassVar[str] = "buy_recall"
    description: ClassVar[str] = (
        "Share of the rises (`horizon` observations ahead) that got a BUY (fraction)."
    )


@dataclass
class SellRecall(_SignalQualityMetric):
    name: ClassVar[str] = "sell_recall"
    description: ClassVar[str] = (
        "Share of the falls (`horizon` observations ahead) that got a SELL (fraction)."
    )


@dataclass
class BuyLift(_SignalQualityMetric):
    name: ClassVar[str] = "buy_lift"
    description: ClassVar[str] = "buy_precision divided by the base rate of rises (ratio)."
    unit: ClassVar[str] = "ratio"


@dataclass
class SellLift(_SignalQualityMetric):
    name: ClassVar[str] = "sell_lift"
    description: ClassVar[str] = "sell_precision divided by the base rate of falls (ratio)."
    unit: ClassVar[str] = "ratio"


@dataclass
class MeanForwardReturnBuy(_SignalQualityMetric):
    name: ClassVar[str] = "mean_forward_return_buy"
    description: ClassVar[str] = "Mean return `horizon` observations after a BUY (fraction)."


@dataclass
class MeanForwardReturnSell(_SignalQualityMetric):
    name: ClassVar[str] = "mean_forward_return_sell"
    description: ClassVar[str] = "Mean return `horizon` observations after a SELL (fraction)."
    greater_is_better: ClassVar[bool | None] = False


@dataclass
class _StrategyMetric(Metric):
    """A figure of the strategy's backtest at ``fee_pct``."""

    field: ClassVar[str] = ""
    unit: ClassVar[str] = "fraction"
    greater_is_better: ClassVar[bool | None] = True
    fee_pct: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.fee_pct < 1:
            raise ValueError(f"fee_pct must be in [0, 1), got {self.fee_pct}")

    def state(self, frame: pd.DataFrame) -> StrategyState:
        return strategy_state(frame, self.fee_pct)

    def merge(self, a: StrategyState, b: StrategyState) -> StrategyState:
        return a.merge(b)

    def finalize(self, state: StrategyState) -> float:
        return float(getattr(state.finalize(), self.field))

    def state_key(self) -> Hashable:
        return StrategyState.key(self.fee_pct)


@dataclass
class StrategyTotalReturn(_StrategyMetric):
    name: ClassVar[str] = "strategy_total_return"
    description: ClassVar[str] = (
        "Total return (fraction) of the long-only strategy: enter on BUY, exit on SELL, "
        "equal weight across cards, fee_pct on each entry and exit."
    )
    field: ClassVar[str] = "total_return"


@dataclass
class StrategySharpe(_StrategyMetric):
    name: ClassVar[str] = "strategy_sharpe"
    description: ClassVar[str] = (
        "Sharpe ratio of the strategy's period returns x sqrt(periods_per_year); "
        "periods_per_year defaults to the spacing of the returns: daily 365, weekly 52, "
        "monthly 12 (ratio)."
    )
    field: ClassVar[str] = "sharpe"
    unit: ClassVar[str] = "ratio"
    inferred_params: ClassVar[tuple[str, ...]] = ("periods_per_year",)
    periods_per_year: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        given = self.periods_per_year
        if given is not None and not (math.isfinite(given) and 0 < given <= 366 * 24):
            raise ValueError(f"periods_per_year must be in (0, 8784], got {given}")
        self._used: float | None = None

    def finalize(self, state: StrategyState) -> float:
        run = state.finalize()
        self._used = (
            run.periods_per_year if self.periods_per_year is None else self.periods_per_year
        )
        return run.sharpe_at(self._used)

    def get_params(self) -> dict[str, Any]:
        """The parameters, with the periods per year actually used once computed."""
        params = super().get_params()
        if self.periods_per_year is None and self._used is not None:
            params["periods_per_year"] = self._used
        return params


@dataclass
class StrategyMaxDrawdown(_StrategyMetric):
    name: ClassVar[str] = "strategy_max_drawdown"
    description: ClassVar[str] = "Largest fall of the strategy's equity from its peak (fraction)."
    field: ClassVar[str] = "max_drawdown"
    greater_is_better: ClassVar[bool | None] = False


@dataclass
class Turnover(_StrategyMetric):
    name: ClassVar[str] = "turnover"
    description: ClassVar[str] = "Strategy entries and exits per position-day (ratio)."
    field: ClassVar[str] = "turnover"
    unit: ClassVar[str] = "ratio"
    greater_is_better: ClassVar[bool | None] = False


SIGNAL_METRICS: tuple[type[Metric], ...] = (
    BuyPrecision,
    SellPrecision,
    BuyRecall,
    SellRecall,
    BuyLift,
    SellLift,
    MeanForwardReturnBuy,
    MeanForwardReturnSell,
    StrategyTotalReturn,
    StrategySharpe,
    StrategyMaxDrawdown,
    Turnover,
)
