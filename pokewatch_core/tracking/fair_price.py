"""Fair prices and signals on demand, from a stored price history (what the logged MLflow
model serves). No MLflow here: the pyfunc wrapper in ``pyfunc.py`` delegates to it, and the
gate rebuilds a champion's components with ``read_components``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.components import Model, SignalPolicy
from pokewatch_core.data.price_index import PriceIndex
from pokewatch_core.data.tables import DATE, FIRST_DAY, ID, LAST_DAY, PRICE, SIGNAL
from pokewatch_core.errors import DataError
from pokewatch_core.evaluation.runner import signals_from
from pokewatch_core.plugins.registry import get_plugins

CONFIG_FILE = "pokewatch_model.json"
HISTORY_FILE = "history.parquet"
FAIR = "fair_price"  # the served fair price


@dataclass
class FairPricer:
    """A model and a policy bound to a price history.

    ``predict(requests)`` takes ``card_id`` and an optional ``date`` per row and returns
    ``card_id, date, market_price, fair_price, signal``: ``market_price`` is the card's last
    known price before ``date`` (missing date: the day after the card's last price).
    """

    model: Model
    policy: SignalPolicy
    history: pd.DataFrame

    def __post_init__(self) -> None:
        self.history = self.history[[ID, DATE, PRICE]].reset_index(drop=True)
        self._index = PriceIndex.build(self.history)
        self._last_day = _last_days(self._index)

    def save(self, directory: Path) -> dict[str, Path]:
        """Write the state as plain files (JSON + parquet); returns them by artifact name."""
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "model": {"name": self.model.name, "params": self.model.get_params()},
            "policy": {"name": self.policy.name, "params": self.policy.get_params()},
        }
        config_path = directory / CONFIG_FILE
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
        history_path = directory / HISTORY_FILE
        self.history.to_parquet(history_path, index=False)
        return {"config": config_path, "history": history_path}

    @classmethod
    def load(cls, config_path: str | Path, history_path: str | Path) -> FairPricer:
        """Rebuild from saved files; the components come from the plugin registry by name."""
        model, policy = read_components(config_path)
        return cls(model, policy, pd.read_parquet(history_path))

    def predict(self, requests: pd.DataFrame) -> pd.DataFrame:
        """Fair price, last market price and signal per request row (NaN where unknown)."""
        if not isinstance(requests, pd.DataFrame) or ID not in requests.columns:
            raise DataError("model input needs a 'card_id' column")
        card_ids = requests[ID].astype("str").reset_index(drop=True)
        dates = self._dates(requests, card_ids)
        at = pd.DataFrame({ID: card_ids, DATE: dates})
        pos, count = self._index.locate(at)
        market = np.where(count > 0, self._index.prices[np.maximum(pos - 1, 0)], np.nan)
        fair = np.asarray(self.model.predict(self.history, at), dtype=np.float64)
        signals = signals_from(self.policy.decide(market, fair), len(at), self.policy)
        return pd.DataFrame({ID: card_ids, DATE: dates, PRICE: market, FAIR: fair, SIGNAL: signals})

    def _dates(self, requests: pd.DataFrame, card_ids: pd.Series[str]) -> pd.Series[Any]:
        codes = self._index.card_codes(card_ids)
        default = np.where(
            codes >= 0, self._last_day[np.maximum(codes, 0)] + 1, np.iinfo(np.int64).min
        )
        default_dates = pd.Series(default.astype("datetime64[D]"), dtype="datetime64[ns]")
        default_dates[codes < 0] = pd.NaT
        if DATE not in requests.columns:
            return default_dates
        raw = requests[DATE].reset_index(drop=True)
        try:
            given = pd.to_datetime(raw, errors="raise", format="mixed")
        except (ValueError, TypeError) as exc:
            raise DataError(f"model input: column 'date': cannot parse dates: {exc}") from exc
        if isinstance(given.dtype, pd.DatetimeTZDtype):
            given = given.dt.tz_localize(None)
        try:
            given = given.dt.floor("D").astype("datetime64[ns]")
        except (ValueError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
            raise DataError(
                f"model input: column 'date': a date outside the supported range "
                f"{FIRST_DAY} to {LAST_DAY} ({exc})"
            ) from exc
        return given.fillna(default_dates)


def json_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with values every JSON parser accepts: dates as ISO ``YYYY-MM-DD`` strings and
    ``None`` (JSON ``null``) wherever a value is missing. MLflow's scoring server writes NaN
    and NaT as ``NaN`` and ``"NaT"``, which are not JSON."""
    missing = frame.isna()
    out = frame.astype(object)
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            out[column] = frame[column].dt.strftime("%Y-%m-%d").astype(object)
    return out.where(~missing, None)


def read_components(config_path: str | Path) -> tuple[Model, SignalPolicy]:
    """The model and policy a saved state names (``pokewatch_model.json``), rebuilt from the
    plugin registry with their parameters."""
    config = json.loads(Path(config_path).read_text())
    plugins = get_plugins()
    model = plugins.models.get(config["model"]["name"]).from_params(config["model"]["params"])
    policy = plugins.policies.get(config["policy"]["name"]).from_params(config["policy"]["params"])
    return model, policy


def _last_days(index: PriceIndex) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Day number of each card's last observed price (cards in index order)."""
    last = np.zeros(len(index.cards), dtype=np.int64)
    if len(index.codes):
        ends = np.flatnonzero(np.r_[index.codes[1:] != index.codes[:-1], True])
        last[index.codes[ends]] = index.days[ends]
    return last
