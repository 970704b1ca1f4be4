"""Signal-quality and strategy metrics: fields of the analyses of ``pokewatch_core.analysis``
(definitions in its ``quality`` and ``strategy`` modules). The metrics of one horizon read one
``Quality(horizon)`` statistic, those of one fee one ``Strategy(fee_pct)``, so each is computed
once per evaluation and merges exactly across partitions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from pokewatch_core import Metric, MetricValue, Quality, QualityState, Strategy, StrategyState


@dataclass
class _SignalQualityMetric(Metric):
    """The field of the signal quality at ``horizon`` that the metric is named after."""

    unit: ClassVar[str] = "fraction"
    greater_is_better: ClassVar[bool | None] = True
    horizon: int = 1

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {self.horizon}")

    def statistic(self) -> Quality:
        return Quality(self.horizon)

    def finalize(self, value: QualityState) -> float:
        return float(getattr(value.finalize(), self.name))


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

    def statistic(self) -> Strategy:
        return Strategy(self.fee_pct)

    def finalize(self, value: StrategyState) -> float:
        return float(getattr(value.finalize(), self.field))


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
    periods_per_year: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        given = self.periods_per_year
        if given is not None and not (math.isfinite(given) and 0 < given <= 366 * 24):
            raise ValueError(f"periods_per_year must be in (0, 8784], got {given}")

    def finalize(self, value: StrategyState) -> float:
        """The Sharpe ratio; left unset, the periods per year are inferred from the return
        series and returned beside the value (logged apart from the parameters)."""
        run = value.finalize()
        if self.periods_per_year is not None:
            return run.sharpe_at(self.periods_per_year)
        inferred = run.periods_per_year
        return MetricValue(run.sharpe_at(inferred), {"periods_per_year": inferred})


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
