"""Component base classes (``Model``, ``Metric``, ``SignalPolicy``) and their parameters.

A component's parameters are the keyword arguments of its constructor, each with a type
annotation and a default. Dataclasses fit well::

    @dataclass
    class Ewma(Model):
        name: ClassVar[str] = "ewma"
        description: ClassVar[str] = "Exponentially weighted moving average."
        alpha: float = 0.5
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union

from pokewatch_core.columns import DATE, ID, PRICE
from pokewatch_core.errors import ConfigError
from pokewatch_core.statistics import Statistic

if TYPE_CHECKING:
    from typing import Self

    import numpy as np
    import pandas as pd

_SCALARS: tuple[type, ...] = (bool, int, float, str)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    """One constructor parameter of a component: its name, annotation and default."""

    name: str
    annotation: Any
    default: Any

    @property
    def type_name(self) -> str:
        """The annotation as a short readable string (``int``, ``float | None``, …)."""
        ann = self.annotation
        if isinstance(ann, type):
            return ann.__name__
        return str(ann).replace("typing.", "")

    def convert(self, value: Any) -> Any:
        """Convert ``value`` (often a string from the command line) to the annotated type."""
        return _convert(self.annotation, value, self.name)


def _options(annotation: Any) -> tuple[list[Any], bool]:
    """The scalar types (or literal values) an annotation admits, and whether None is allowed."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        members = typing.get_args(annotation)
        allow_none = type(None) in members
        out: list[Any] = []
        for member in members:
            if member is not type(None):
                out.extend(_options(member)[0])
        return out, allow_none
    if origin is Literal:
        return [("literal", v) for v in typing.get_args(annotation)], False
    return [annotation], False


def _supported(annotation: Any) -> bool:
    options, _ = _options(annotation)
    return bool(options) and all(
        o in _SCALARS or (isinstance(o, tuple) and o[0] == "literal") for o in options
    )


def _convert(annotation: Any, value: Any, name: str) -> Any:
    options, allow_none = _options(annotation)
    if value is None or (
        allow_none and isinstance(value, str) and value.strip().lower() in {"", "none", "null"}
    ):
        if allow_none:
            return None
        raise ConfigError(f"parameter '{name}' needs a value, got None")
    for option in options:
        try:
            return _convert_one(option, value)
        except (TypeError, ValueError):
            continue
    expected = " or ".join(
        repr(o[1]) if isinstance(o, tuple) else getattr(o, "__name__", str(o)) for o in options
    )
    raise ConfigError(f"parameter '{name}' expects {expected}, got {value!r}")


def _convert_one(option: Any, value: Any) -> Any:
    if isinstance(option, tuple):  # Literal value
        literal = option[1]
        if value == literal or (isinstance(value, str) and value == str(literal)):
            return literal
        raise ValueError(value)
    if option is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if option is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise TypeError(value)
    if option is float:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise TypeError(value)
    if option is str:
        if isinstance(value, str):
            return value
        raise TypeError(value)
    raise TypeError(value)


class Component:
    """Common behaviour of models, metrics and signal policies."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    _param_specs_cache: ClassVar[dict[str, ParamSpec] | None] = None

    @classmethod
    def param_specs(cls) -> dict[str, ParamSpec]:
        """The component's parameters, read from its constructor's annotated keyword arguments.

        Raises ``TypeError`` when a parameter has no default or an annotation that cannot be
        converted from a string (only ``bool``, ``int``, ``float``, ``str``, ``Literal`` and
        their ``Optional`` / unions are).
        """
        cached = cls.__dict__.get("_param_specs_cache")
        if cached is not None:
            return dict(cached)
        init = cls.__init__
        if init is object.__init__:
            specs: dict[str, ParamSpec] = {}
        else:
            try:
                hints = typing.get_type_hints(init)
            except Exception:  # unresolved forward refs: fall back to the class annotations
                hints = typing.get_type_hints(cls)
            specs = {}
            for pname, p in inspect.signature(init).parameters.items():
                if pname == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    continue
                if p.default is inspect.Parameter.empty:
                    raise TypeError(f"parameter '{pname}' of {cls.__qualname__} has no default")
                annotation = hints.get(pname, p.annotation)
                if annotation is inspect.Parameter.empty:
                    raise TypeError(
                        f"parameter '{pname}' of {cls.__qualname__} has no type annotation"
                    )
                if not _supported(annotation):
                    raise TypeError(
                        f"parameter '{pname}' of {cls.__qualname__} has annotation "
                        f"{annotation!r}; use bool, int, float, str, Literal or Optional of them"
                    )
                specs[pname] = ParamSpec(pname, annotation, p.default)
        cls._param_specs_cache = specs
        return dict(specs)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Self:
        """Build the component from ``params`` (strings are converted by the annotations).

        Unknown keys raise ``ConfigError`` listing the valid ones.
        """
        specs = cls.param_specs()
        params = dict(params or {})
        unknown = sorted(set(params) - set(specs))
        if unknown:
            valid = ", ".join(sorted(specs)) or "none"
            raise ConfigError(
                f"{cls.kind} '{cls.name}' has no parameter {', '.join(map(repr, unknown))} "
                f"(valid: {valid})"
            )
        kwargs = {k: specs[k].convert(v) for k, v in params.items()}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.kind} '{cls.name}': {exc}") from exc

    def get_params(self) -> dict[str, Any]:
        """The current parameter values, by name, for logging."""
        return {k: getattr(self, k, spec.default) for k, spec in self.param_specs().items()}


class Model(Component):
    """A price model: estimates each card's fair price on a date from earlier prices.

    Subclasses set ``name`` and ``description`` and implement ``predict``; ``fit`` is optional.
    ``artifact_name`` names the model logged to MLflow (empty: ``<name>_model``).
    """

    kind: ClassVar[str] = "model"
    artifact_name: ClassVar[str] = ""
    answers_cutoffs: ClassVar[bool] = False
    """Whether ``predict`` answers many cutoffs in one call: when ``at`` has a ``cutoff``
    column, each row's value uses only ``history`` rows dated on or before that row's
    cutoff (and, with a ``window_start`` column, on or after it). Such a model is handed the
    whole history once per refit group (once per horizon at every date); any other model is
    called once per cutoff with only the history that cutoff allows (docs/plugins.md,
    backtests)."""

    def history_needed(self) -> int:
        """The fewest periods of history the model needs (a sliding ``input_size`` shorter
        than this is refused); default 1."""
        return 1

    def fit(self, history: pd.DataFrame) -> Self:
        """Learn from ``history`` (``card_id, date, market_price``); returns ``self``."""
        return self

    def predict(self, history: pd.DataFrame, at: pd.DataFrame) -> np.ndarray[Any, Any]:
        """Fair price for each row of ``at`` (``card_id, date``), in its order.

        Each value may use only ``history`` rows dated strictly before that row's date; NaN
        where the model cannot predict. A model with ``answers_cutoffs`` also reads the
        ``cutoff`` (and ``window_start``) column of ``at`` when it is there.
        """
        raise NotImplementedError(f"model '{self.name}' does not implement predict()")


UNITS: tuple[str, ...] = ("percent", "fraction", "count", "ratio", "price")
"""Units a metric may declare: percent (0-100), fraction (0-1 scale, e.g. a return of 0.05),
count (rows), ratio (a dimensionless multiple such as a lift or a Sharpe ratio), price (the
data's currency, e.g. an error in dollars)."""


class Metric(Component):
    """A number computed over the evaluation frame (``card_id, date, market_price,
    predicted_price, signal`` and carried columns).

    Either declare the ``Statistic`` the metric reads (``statistic``) and turn its value into
    the metric's (``finalize``): the statistic merges exactly, so the metric is computed in
    card-aligned chunks or on the partitions of a cluster, and metrics reading equal
    statistics share one computation. Or write ``compute(frame)`` alone (optionally ``fit``).

    ``unit`` is one of ``UNITS``; ``greater_is_better`` is True, False, or None for a figure
    with no better direction (a count, a rate of signals). Both drive display and ranking.
    """

    kind: ClassVar[str] = "metric"
    unit: ClassVar[str] = "ratio"
    greater_is_better: ClassVar[bool | None] = None

    def statistic(self) -> Statistic[Any] | None:
        """The statistic the metric reads (its value is ``finalize(value)``), or None
        (default) for a metric that writes ``compute``."""
        return None

    def finalize(self, value: Any) -> float:
        """With ``statistic``: the metric from the statistic's (merged) value; NaN where it
        is undefined. A ``MetricValue`` also carries what was inferred from the data."""
        raise NotImplementedError(f"metric '{self.name}' declares no statistic")

    def fit(self, history: pd.DataFrame) -> Self:
        """Optional, for a metric that writes ``compute``: learn before ``compute`` from
        ``history``, exactly the table ``Model.fit`` receives (``card_id, date,
        market_price`` of the rows the model was fitted on). Returns ``self``."""
        return self

    def compute(self, frame: pd.DataFrame) -> float:
        """The metric's value over ``frame`` (the scored rows); NaN where it is undefined.

        A metric that declares a statistic need not write it: the value is
        ``finalize(statistic.compute(frame, history))`` with ``frame``'s own rows as the
        history."""
        statistic = self.statistic()
        if statistic is None:
            raise NotImplementedError(f"metric '{self.name}' does not implement compute()")
        return self.finalize(statistic.compute(frame, frame[[ID, DATE, PRICE]]))


class SignalPolicy(Component):
    """Turns market and fair prices into ``"BUY"``, ``"SELL"`` or ``"HOLD"`` per row."""

    kind: ClassVar[str] = "policy"

    def decide(self, market_price: np.ndarray[Any, Any], fair_price: np.ndarray[Any, Any]) -> Any:
        """One signal per row (missing where ``fair_price`` is NaN), vectorised."""
        raise NotImplementedError(f"policy '{self.name}' does not implement decide()")


KIND_BASES: dict[str, type[Component]] = {"model": Model, "metric": Metric, "policy": SignalPolicy}
"""The one table of component kinds and their base classes."""

SIGNALS: tuple[str, str, str] = ("BUY", "SELL", "HOLD")
