"""The analyses an evaluation's summary, plots and tables show, as statistics in the same
states as the metrics' (keyed by their specification, so a metric reading an equal statistic
shares its computation): the overview, signal quality at horizon 1, the strategy at the fee of
the run's strategy metrics (else 0) and the per-card table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pokewatch_core.analysis.by_card import ByCard
from pokewatch_core.analysis.overview import Overview, OverviewState
from pokewatch_core.analysis.quality import Quality, SignalQuality
from pokewatch_core.analysis.strategy import Backtest, Strategy
from pokewatch_core.statistics import Statistic


@dataclass(frozen=True)
class Analyses:
    """The analyses an evaluation's summary, plots and tables show: signal quality at horizon
    1, the strategy (at the fee of the run's strategy metrics, else 0) and the per-card table."""

    overview: OverviewState
    signal_quality: SignalQuality
    backtest: Backtest
    by_card: pd.DataFrame
    reports_signals: bool  # whether the run's metrics include signal or strategy figures

    @property
    def signal_counts(self) -> list[int]:
        """Scored rows with each signal: BUY, SELL, HOLD."""
        return [int(self.by_card[column].sum()) for column in ("buy", "sell", "hold")]


@dataclass(frozen=True)
class AnalysisStatistics:
    """The statistics behind the analyses of a run whose metrics read ``metric_statistics``."""

    overview: Overview
    quality: Quality
    strategy: Strategy
    by_card: ByCard
    reports_signals: bool

    @classmethod
    def of(cls, metric_statistics: Iterable[Statistic[Any] | None]) -> AnalysisStatistics:
        """The analyses' statistics: the signal quality at the horizon of the first quality
        statistic a metric reads (else 1) and the strategy at the fee of the first strategy
        statistic (else 0), so the summary shows what the metrics table does."""
        read = [s for s in metric_statistics if s is not None]
        fees = [s.fee_pct for s in read if isinstance(s, Strategy)]
        horizons = [s.horizon for s in read if isinstance(s, Quality)]
        signalled = any(isinstance(s, Quality | Strategy) for s in read)
        quality = Quality(horizons[0] if horizons else 1)
        return cls(Overview(), quality, Strategy(fees[0] if fees else 0.0), ByCard(), signalled)

    def all(self) -> list[Statistic[Any]]:
        """The four statistics."""
        return [self.overview, self.quality, self.strategy, self.by_card]

    def analyses(self, states: Mapping[Statistic[Any], Any]) -> Analyses:
        """The analyses from (merged) states holding the four statistics' values."""
        return Analyses(
            states[self.overview],
            states[self.quality].finalize(),
            states[self.strategy].finalize(),
            states[self.by_card].finalize(),
            self.reports_signals,
        )
