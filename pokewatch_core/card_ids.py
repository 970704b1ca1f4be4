"""Card ids: plain strings outside, integer codes inside.

Every frame PokeWatch hands out (validated tables, the frames given to plugins, the evaluation
frame) holds ``card_id`` in pandas' default string dtype, so a plugin can ``merge``,
``merge_asof``, ``join``, ``map`` or ``groupby`` it against its own string-keyed tables with no
cast. Inside, models and metrics work on integer codes. The two meet here: a string column made
by ``plain_ids`` remembers its codes for as long as its (immutable) Arrow array lives, so the
runner's own components get the codes back without factorising millions of strings again.
Frames a plugin builds itself are simply factorised.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
import pandas as pd

from pokewatch_core.columns import ID

# What pandas itself makes of a list of strings: ``str`` (Arrow-backed) on pandas 3, object
# before. Ids are handed out in exactly that dtype.
_PLAIN_DTYPE = pd.Series(["x"]).dtype
_ARROW = getattr(_PLAIN_DTYPE, "storage", None) == "pyarrow"

Codes = np.ndarray[Any, Any]
_lock = threading.Lock()
# id(arrow array) -> (weak reference to it, its codes, its categories). The weak reference's
# callback drops the entry when the array dies, so an id is never matched to a new array.
_known: dict[int, tuple[weakref.ref[Any], Codes, pd.Index[Any]]] = {}


def _arrow_array(ids: pd.Series[Any]) -> Any:
    array = ids.array
    if _ARROW and isinstance(ids.dtype, pd.StringDtype) and hasattr(array, "__arrow_array__"):
        return array.__arrow_array__()
    return None


def _forget(key: int) -> None:
    with _lock:
        _known.pop(key, None)


def plain_ids(codes: Codes, categories: pd.Index[Any], index: Any = None) -> pd.Series[Any]:
    """A ``card_id`` column of plain strings from codes (``-1``: missing) into ``categories``
    (distinct strings); the column remembers its codes for ``codes_of``."""
    labels = np.asarray(categories, dtype=object)
    if not _ARROW:
        values = labels.take(codes) if len(labels) else np.full(len(codes), None, dtype=object)
        values[codes < 0] = None
        return pd.Series(values, index=index, name=ID, dtype=_PLAIN_DTYPE)
    import pyarrow as pa

    indices = pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes)
    strings = pa.array(labels, type=pa.large_string()).take(indices)
    series = pd.Series(pd.array(strings, dtype=_PLAIN_DTYPE), index=index, name=ID, copy=False)
    remember(series, codes, categories)
    return series


def is_plain(ids: pd.Series[Any]) -> bool:
    """Whether a column already holds ids in the dtype PokeWatch hands out."""
    return bool(ids.dtype == _PLAIN_DTYPE)


def remember(ids: pd.Series[Any], codes: Codes, categories: pd.Index[Any]) -> None:
    """Let ``codes_of(ids)`` (and of views of ``ids``) return these codes without work.
    ``ids`` must hold exactly ``categories.take(codes)``."""
    arrow = _arrow_array(ids)
    if arrow is None:
        return
    key = id(arrow)

    def drop(_: object) -> None:
        _forget(key)

    ref = weakref.ref(arrow, drop)
    with _lock:
        _known[key] = (ref, codes, pd.Index(categories))


def codes_of(ids: pd.Series[Any]) -> tuple[Codes, pd.Index[Any]]:
    """``(codes, categories)`` of a card-id column: remembered for columns made by
    ``plain_ids`` (and views of them), read from a categorical, else factorised.
    Missing ids get code -1."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        return np.asarray(ids.array.codes), pd.Index(ids.cat.categories)
    arrow = _arrow_array(ids)
    if arrow is not None:
        with _lock:
            entry = _known.get(id(arrow))
        if entry is not None and entry[0]() is arrow:
            return entry[1], entry[2]
    codes, uniques = pd.factorize(ids)
    return np.asarray(codes), pd.Index(uniques)
