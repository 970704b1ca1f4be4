"""What to evaluate: the built components and the split, as one value every engine takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from pokewatch_core.components import Metric, Model, SignalPolicy
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.cutoffs import BacktestOptions, Cutoffs, resolve_cutoffs
from pokewatch_core.plugins import resolve


def parse_test_start(value: Any) -> pd.Timestamp | None:
    """``test_start`` as a day (None when not given); ``ConfigError`` when not a date."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"test_start: cannot parse {value!r} as a date") from exc
    if pd.isna(stamp):
        raise ConfigError(f"test_start: cannot parse {value!r} as a date")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return stamp.floor("D")


@dataclass(frozen=True)
class EvaluationSpec:
    """A model, a signal policy and metrics (built, parameters applied) and the scored period:
    every row (``test_start`` None, walk-forward) or the rows on or after ``test_start`` (the
    model fitted on the rows before it). Engines evaluate a spec; sweeps make one per
    combination."""

    model: Model
    policy: SignalPolicy
    metrics: dict[str, Metric] = field(default_factory=dict)
    test_start: pd.Timestamp | None = None
    backtest: BacktestOptions = field(default_factory=BacktestOptions)
    """The horizon, cutoffs and refits (docs/backtests.md); default: one step, every date."""
    cutoffs: Cutoffs | None = None
    """The backtest resolved on the whole data set (``resolved``): set by an engine that
    evaluates the data in parts, so that every part has the same cutoffs."""
    spell: Any = field(default=None, compare=False, repr=False)
    """How the caller names the backtest options in a refusal (``--windows``, ``windows``)."""

    @classmethod
    def build(
        cls,
        model: str | Model | type[Model],
        policy: str | SignalPolicy | type[SignalPolicy] = DEFAULT_POLICY,
        metrics: Sequence[str | Metric | type[Metric]] | None = None,
        params: Mapping[str, Any] | None = None,
        test_start: str | pd.Timestamp | None = None,
        backtest: BacktestOptions | None = None,
        *,
        spell: Any = None,
    ) -> EvaluationSpec:
        """The spec of components given by name, class or instance (``metrics=None``: every
        registered metric), ``params`` routed to them (``window_size``, ``policy.x``), and
        ``test_start`` parsed as a day. Raises ``ConfigError`` on any bad name or value."""
        start = parse_test_start(test_start)
        options = backtest or BacktestOptions()
        options.check(start, spell)
        built_model, built_policy, built_metrics = resolve.resolve_components(
            model, policy, metrics, params
        )
        return cls(built_model, built_policy, built_metrics, start, options, spell=spell)

    def resolve(self, days: Any, source: str = "data", spell: Any = None) -> Cutoffs:
        """The cutoffs of this spec on data whose distinct day numbers are ``days``
        (``ConfigError`` when they do not fit); the resolved ones if the spec holds them."""
        if self.cutoffs is not None:
            return self.cutoffs
        return resolve_cutoffs(
            self.backtest, days, self.test_start, source=source, spell=spell or self.spell,
            history_needed=self.model.history_needed(),
        )  # fmt: skip

    def resolved(self, days: Any, source: str = "data", spell: Any = None) -> EvaluationSpec:
        """The same spec holding its cutoffs on data whose distinct day numbers are ``days``."""
        return replace(self, cutoffs=self.resolve(days, source, spell))

    def with_metrics(self, metrics: dict[str, Metric]) -> EvaluationSpec:
        """The same spec scoring ``metrics`` instead."""
        return replace(self, metrics=metrics)
