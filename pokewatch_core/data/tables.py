"""Reading and validating price tables (docs/user-guide.md, data).

Every command and ``evaluate()`` goes through ``prepare_prices``: it maps column names,
normalises types (string card ids, day-resolution dates, float prices) and rejects bad
input with a one-line ``DataError`` naming the source, the column, the problem and one
offending row. NaN prices are allowed: they are rows that cannot be scored.
"""

from __future__ import annotations

import errno
import logging
import re
import stat
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from pokewatch_core.card_ids import codes_of, is_plain, plain_ids, remember
from pokewatch_core.columns import DATE as DATE
from pokewatch_core.columns import ID as ID
from pokewatch_core.columns import PREDICTED as PREDICTED
from pokewatch_core.columns import PRICE as PRICE
from pokewatch_core.columns import SIGNAL as SIGNAL
from pokewatch_core.errors import DataError

REQUIRED = (ID, DATE, PRICE)
ALL_PRICES_MISSING = "all prices are missing"
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
"""The file suffixes read as delimited text, each with its separator."""
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
"""The file suffixes read as Parquet."""
DAY_NS = 86_400 * 10**9
"""Nanoseconds in a day: the one day constant (day numbers <-> datetime64[ns])."""
_UNITS_PER_DAY = {"s": 86_400, "ms": 86_400 * 10**3, "us": 86_400 * 10**6, "ns": DAY_NS}
_TZ_SUFFIX = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _exc_line(exc: BaseException) -> str:
    return _short(str(exc) or type(exc).__name__, 160)


def read_table(path: str | Path, id_col: str = ID) -> pd.DataFrame:
    """Read a parquet or CSV file into a DataFrame, with one-line ``DataError`` on failure.

    In a CSV file the card-id column (``id_col``) is read as text: ``1``, ``01`` and ``007``
    are three cards and ``2.5`` stays ``2.5``."""
    path = Path(path)
    check_file_type(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(
            f"{path}: is a directory, expected a parquet or CSV file "
            "(combine daily snapshots with 'pokewatch features')"
        )
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES or (suffix not in CSV_SUFFIXES and _is_parquet(path)):
        return _read_parquet(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, CSV_SUFFIXES[suffix], id_col)
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .parquet or .csv)")


def check_file_type(path: Path) -> None:
    """Refuse what would hang or mislead a reader: a FIFO (opening it blocks until a writer
    comes), a device, a socket, a symlink loop."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # reported by the caller
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{path}: symlink loop (too many levels of symbolic links)") from exc
        raise DataError(f"{path}: cannot read: {_exc_line(exc)}") from exc
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or (stat.S_ISBLK(mode))
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "special"
    )
    raise DataError(f"{path}: not a regular file ({kind}); expected a parquet or CSV file")


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for broken files
        raise DataError(f"{path}: cannot read parquet file: {_exc_line(exc)}") from exc


# pandas' default missing-value markers, for every column but the card id
NA_TEXT = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
           "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")  # fmt: skip


def csv_options(path: str | Path, sep: str, id_col: str) -> dict[str, Any]:
    """``pd.read_csv`` options that keep card ids as text: ``007`` stays ``007`` and ids
    such as ``NA`` or ``null`` stay ids (only an empty id is missing), while the other columns
    know pandas' usual missing-value markers."""
    header = pd.read_csv(path, sep=sep, nrows=0).columns
    na_values: dict[Any, list[str]] = {c: list(NA_TEXT) for c in header if c != id_col}
    na_values[id_col] = [""]
    return {"dtype": {id_col: "str"}, "keep_default_na": False, "na_values": na_values}


def _read_csv(path: Path, sep: str, id_col: str) -> pd.DataFrame:
    try:  # a dtype for a column the file lacks is ignored; the missing column is named later
        frame: pd.DataFrame = pd.read_csv(path, sep=sep, **csv_options(path, sep, id_col))
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: empty table (the file has no header and no rows)") from exc
    except Exception as exc:
        raise DataError(f"{path}: cannot read CSV file: {_exc_line(exc)}") from exc
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for other in (";", "\t", "|", ","):
            if other != sep and other in header:
                raise DataError(
                    f"{path}: only one column {_short(header)} found: the file looks "
                    f"delimited by {other!r}, expected {sep!r}"
                )
    return frame


def _row_hint(frame: pd.DataFrame, position: int) -> str:
    """`row N (card_id='x', date=...)` for a 0-based position, 1-based in the message."""
    parts = []
    for col in (ID, DATE):
        if col in frame.columns:
            value = frame[col].iloc[position]
            if isinstance(value, pd.Timestamp):
                value = value.date().isoformat()
            parts.append(f"{col}={_short(value)}")
    where = f" ({', '.join(parts)})" if parts else ""
    return f"row {position + 1}{where}"


def _first(mask: np.ndarray[Any, Any] | pd.Series[bool]) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _map_columns(frame: pd.DataFrame, source: str, mapping: dict[str, str | None]) -> pd.DataFrame:
    flags = {ID: "--id-col", DATE: "--date-col", PRICE: "--price-col"}
    columns = [str(c) for c in frame.columns]
    renames: dict[Any, str] = {}
    for canonical, given in mapping.items():
        if not given or given == canonical:
            continue
        if given not in columns:
            raise DataError(
                f"{source}: column {given!r} given with {flags[canonical]} not found "
                f"(columns: {', '.join(columns)})"
            )
        if canonical in columns:
            raise DataError(
                f"{source}: {flags[canonical]} maps {given!r} to {canonical!r}, but the table "
                f"already has a column {canonical!r}"
            )
        renames[frame.columns[columns.index(given)]] = canonical
    if renames:
        frame = frame.rename(columns=renames)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        hint = " (map other names with --id-col/--date-col/--price-col)"
        raise DataError(
            f"{source}: missing required column {missing[0]!r} "
            f"(columns: {', '.join(map(str, frame.columns))}){hint}"
        )
    return frame


_NESTED = (list, tuple, dict, set, np.ndarray)


def _drop_nested(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Refuse nested values (lists, structs, maps: parquet's nested types) in a required
    column; drop a carried column holding them, with a warning, since nothing downstream
    (hashing, the MLflow dataset, the model's history) can use them."""
    drop = []
    for column in frame.columns:
        series = frame[column]
        if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) != "mixed":
            continue  # only a "mixed" object column can hold containers: no per-row pass
        nested = np.fromiter((isinstance(v, _NESTED) for v in series.array), bool, len(series))
        if not nested.any():
            continue
        pos = _first(nested)
        kind = type(series.iloc[pos]).__name__
        if column in REQUIRED:
            raise DataError(
                f"{source}: column {column!r}: nested values ({kind}) are not supported, "
                f"at row {pos + 1}"
            )
        drop.append(column)
        logging.getLogger("pokewatch").warning(
            "warning: %s: column %r holds nested values (%s); dropped", source, column, kind
        )
    return frame.drop(columns=drop) if drop else frame


def _clean_ids(frame: pd.DataFrame, source: str) -> pd.Series[Any]:
    """Card ids as plain strings (see ``card_ids``); the checks and conversions touch only the
    distinct ids, and the codes found here are remembered for the models and metrics."""
    ids = frame[ID]
    codes, categories = codes_of(ids)
    if (codes < 0).any():
        pos = _first(codes < 0)
        raise DataError(f"{source}: column 'card_id': missing card id at {_row_hint(frame, pos)}")
    labels = categories.astype("str")
    if not labels.is_unique:  # e.g. 1 and "1": the same id once read as text
        codes, labels = pd.factorize(labels.take(codes))
        labels = pd.Index(labels)
    blank = np.asarray(labels.str.strip() == "", dtype=bool)
    if blank.any():
        pos = _first(np.isin(codes, np.flatnonzero(blank)))
        raise DataError(f"{source}: column 'card_id': empty or whitespace card id at row {pos + 1}")
    if is_plain(ids) and labels.equals(categories):  # already plain strings: no copy
        remember(ids, codes, labels)
        return ids.rename(ID)
    return plain_ids(codes, labels, index=frame.index)


def _clean_dates(frame: pd.DataFrame, source: str) -> pd.Series[Any]:
    raw = frame[DATE]
    if raw.isna().any():
        pos = _first(raw.isna())
        raise DataError(f"{source}: column 'date': missing date at {_row_hint(frame, pos)}")
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        dates = raw.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        dates = raw
    elif pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        pos = 0
        raise DataError(
            f"{source}: column 'date': numbers are not dates ({_short(raw.iloc[pos])} at "
            f"{_row_hint(frame, pos)}); use ISO dates such as 2025-11-23"
        )
    else:
        dates = _parse_dates(frame, raw.astype("str"), source)
    values = dates.to_numpy()
    _check_date_range(values, frame, source)
    unit, _ = np.datetime_data(values.dtype)
    if unit not in _UNITS_PER_DAY:  # coarser or odd units: use nanoseconds
        values, unit = values.astype("datetime64[ns]"), "ns"
    ticks = values.view(np.int64)  # the file's own resolution, no conversion pass
    remainder = ticks % _UNITS_PER_DAY[unit]
    if remainder.any():  # times of day: keep the day (floor, also before 1970)
        values = (ticks - remainder).view(values.dtype)
    return pd.Series(values, index=frame.index, name=DATE)


FIRST_DAY, LAST_DAY = np.datetime64("1677-09-22"), np.datetime64("2262-04-11")


def _check_date_range(values: np.ndarray[Any, Any], frame: pd.DataFrame, source: str) -> None:
    """Refuse days outside what nanosecond timestamps hold (pandas, the model's history and
    its answers use them): they would wrap around silently, years 3000 becoming 1830."""
    outside = (values < FIRST_DAY) | (values > LAST_DAY)
    if outside.any():
        pos = _first(outside)
        day = np.datetime_as_string(values[pos], unit="D")
        raise DataError(
            f"{source}: column 'date': {day} at row {pos + 1} is outside the supported range "
            f"{FIRST_DAY} to {LAST_DAY}"
        )


def _check_one_format(text: pd.Series[str], iso: pd.Series[Any], source: str) -> None:
    """Refuse a column mixing ISO dates with another format (``2025-01-04`` next to
    ``01/04/2025``): the other format's day/month order would only be guessed."""
    bad = iso.isna()
    if bad.any() and not bad.all():
        other = pd.to_datetime(text[bad], errors="coerce", format="mixed")
        if other.isna().any():
            return  # not a second format: an unparsable value, reported as such
        a, b = _first(~bad), _first(bad)
        raise DataError(
            f"{source}: column 'date': mixed date formats ({_short(text.iloc[a])} at row "
            f"{a + 1}, {_short(text.iloc[b])} at row {b + 1}); use one format, ISO "
            "(2025-01-04) preferably"
        )


def _one_format(values: pd.Series[str], source: str) -> pd.Series[Any]:
    """Parse non-ISO dates with the one format that reads all of them (guessed from the
    first, month-first and day-first). Refused: values in different formats, and files where
    both day orders read every value differently (``01/02/2025``: January 2 or February 1?).
    Values no candidate reads stay NaT (reported as unparsable)."""
    import warnings

    from pandas.tseries.api import guess_datetime_format

    first = values.iloc[0].strip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        guesses = [guess_datetime_format(first), guess_datetime_format(first, dayfirst=True)]
    formats = list(dict.fromkeys(f for f in guesses if f))
    readings = [pd.to_datetime(values, errors="coerce", format=f) for f in formats]
    complete = [r for r in readings if r.notna().all()]
    if len(complete) > 1 and not complete[0].equals(complete[1]):
        pos = _first((complete[0] != complete[1]).to_numpy())
        raise DataError(
            f"{source}: column 'date': ambiguous day/month order ({_short(values.iloc[pos])} "
            f"reads as {complete[0].iloc[pos].date()} or {complete[1].iloc[pos].date()}); "
            "use ISO dates (2025-01-04)"
        )
    if complete:
        return complete[0]
    best = max(readings, key=lambda r: int(r.notna().sum()), default=None)
    if best is not None and best.notna().any():
        other = pd.to_datetime(values[best.isna()], errors="coerce", format="mixed")
        if other.notna().any():  # a second format, not just an unreadable value
            a = _first(best.notna().to_numpy())
            b = _first(best.isna().to_numpy() & values.index.isin(other.index[other.notna()]))
            raise DataError(
                f"{source}: column 'date': mixed date formats ({_short(values.iloc[a])} and "
                f"{_short(values.iloc[b])}); use one format, ISO (2025-01-04) preferably"
            )
        return best
    return pd.to_datetime(values, errors="coerce", format="mixed")


def _parse_dates(frame: pd.DataFrame, text: pd.Series[str], source: str) -> pd.Series[Any]:
    suffixes = text.str.strip().str.extract(_TZ_SUFFIX, expand=False)
    has_tz = suffixes.notna()
    if has_tz.any():
        normalised = suffixes.fillna("naive").str.replace(":", "").str.replace("Z", "+0000")
        kinds = normalised.unique()
        if len(kinds) > 1:
            first = normalised.iloc[0]
            pos = _first(normalised != first)
            raise DataError(
                f"{source}: column 'date': mixed time zones ({_short(text.iloc[0])} at row 1 "
                f"vs {_short(text.iloc[pos])} at row {pos + 1})"
            )
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        _check_one_format(text, parsed, source)
        bad = parsed.isna()
        if bad.any():  # the non-ISO values: one format, read the same way for every value
            parsed[bad] = _one_format(text[bad], source)
            bad = parsed.isna()
    except DataError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{source}: column 'date': cannot parse dates: {_exc_line(exc)}") from exc
    if bad.any():
        pos = _first(bad)
        raise DataError(
            f"{source}: column 'date': unparsable date {_short(text.iloc[pos])} at row {pos + 1}"
        )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _clean_prices(frame: pd.DataFrame, source: str, part: bool = False) -> pd.Series[float]:
    raw = frame[PRICE]
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataError(f"{source}: column 'market_price': booleans are not prices")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        prices = raw.astype("float64")
    else:
        prices = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = prices.isna() & raw.notna()
        if bad.any():
            text = raw.astype("str").str.strip().str.lower()
            nan_words = text.isin(["", "nan", "na", "n/a", "null", "none"])
            bad &= ~nan_words
        if bad.any():
            pos = _first(bad)
            raise DataError(
                f"{source}: column 'market_price': non-numeric price "
                f"{_short(raw.iloc[pos])} at {_row_hint(frame, pos)}"
            )
    values = prices.to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        pos = _first(infinite)
        raise DataError(
            f"{source}: column 'market_price': infinite price at {_row_hint(frame, pos)}"
        )
    with np.errstate(invalid="ignore"):
        not_positive = values <= 0
    if not_positive.any():
        pos = _first(not_positive)
        kind = "zero" if values[pos] == 0 else "negative"
        raise DataError(
            f"{source}: column 'market_price': {kind} price {values[pos]:g} at "
            f"{_row_hint(frame, pos)} (prices must be > 0; leave unknown prices empty)"
        )
    if np.isnan(values).all() and not part:  # a part's cards may all be unpriced
        raise DataError(f"{source}: column 'market_price': {ALL_PRICES_MISSING}")
    return prices


def category_codes(series: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """The integer codes of a categorical column, as a view (``.cat.codes`` copies)."""
    return np.asarray(cast(pd.Categorical, series.array).codes)


def day_numbers(dates: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Dates as whole days since 1970-01-01 (int64)."""
    nanos = np.asarray(dates, dtype="datetime64[ns]").view(np.int64)
    days: np.ndarray[Any, np.dtype[np.int64]] = nanos // DAY_NS  # floor: right before 1970 too
    return days


def day_dates(days: Any) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    """Day numbers (``day_numbers``) as dates (datetime64[ns] at midnight)."""
    return (np.asarray(days, dtype=np.int64) * DAY_NS).astype("datetime64[ns]")


DAY_OFFSET = 1 << 31  # keeps day numbers (which may be negative) non-negative in a key


def sort_keys(codes: np.ndarray[Any, Any], days: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``card code << 32 | day``: one int64 per row that sorts by card, then date."""
    keys: np.ndarray[Any, Any] = (codes.astype(np.int64) << 32) | (days + DAY_OFFSET)
    return keys


def same_buffers(a: tuple[np.ndarray[Any, Any], ...], b: tuple[np.ndarray[Any, Any], ...]) -> bool:
    """Whether two tuples of arrays view the very same memory (same address, shape, strides).

    Callers keep the arrays of ``b`` alive, so an address cannot have been reused meanwhile.
    """
    return len(a) == len(b) and all(
        x.ctypes.data == y.ctypes.data and x.shape == y.shape and x.strides == y.strides
        for x, y in zip(a, b, strict=True)
    )


def strictly_sorted(codes: np.ndarray[Any, Any], dates: np.ndarray[Any, Any]) -> bool:
    """Whether rows are strictly increasing by (card code, date): sorted and no duplicate."""
    if len(codes) < 2:
        return True
    nanos = dates.view(np.int64)
    later_card = codes[1:] > codes[:-1]
    return bool(
        (later_card | (codes[1:] == codes[:-1])).all()
        and (later_card | (nanos[1:] > nanos[:-1])).all()
    )


def _check_duplicates(frame: pd.DataFrame, source: str) -> None:
    codes = codes_of(frame[ID])[0]
    if strictly_sorted(codes, frame[DATE].to_numpy()):
        return
    key = sort_keys(codes, day_numbers(frame[DATE]))
    if len(key) > 1:
        order = np.argsort(key, kind="stable")
        dup = np.flatnonzero(key[order][1:] == key[order][:-1])
        if len(dup):
            first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
            raise DataError(
                f"{source}: duplicate (card_id, date) at {_row_hint(frame, second)}, "
                f"same as row {first + 1}"
            )


def prepare_prices(
    data: pd.DataFrame,
    source: str = "data",
    *,
    id_col: str | None = None,
    date_col: str | None = None,
    price_col: str | None = None,
    part: bool = False,
) -> pd.DataFrame:
    """Validate and normalise a price table; returns a new frame in the input's row order.

    The result has ``card_id`` (categorical of strings), ``date`` (datetime64 at midnight, in
    the input's resolution) and ``market_price`` (float64, NaN where unknown) first, then the
    carried columns.
    Raises ``DataError`` with a one-line message on the first problem found. ``part``: the
    table is one partition of a larger one (whole cards), so checks of the whole table (some
    price is known) are left to the caller.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(data).__name__}")
    if data.shape[1] == 0 or len(data) == 0:
        raise DataError(f"{source}: empty table (no rows)")
    frame = _map_columns(data, source, {ID: id_col, DATE: date_col, PRICE: price_col})
    taken = [c for c in (PREDICTED, SIGNAL) if c in frame.columns]
    if taken:
        raise DataError(
            f"{source}: column {taken[0]!r} is reserved for the evaluation's output "
            "(rename or drop it)"
        )
    frame = _drop_nested(frame.reset_index(drop=True), source)
    ids = _clean_ids(frame, source)
    dates = _clean_dates(frame, source)
    prices = _clean_prices(frame, source, part)
    carried = [c for c in frame.columns if c not in REQUIRED]
    out = frame.assign(**{ID: ids, DATE: dates, PRICE: prices})[[ID, DATE, PRICE, *carried]]
    _check_duplicates(out, source)
    return out


def load_prices(
    path: str | Path,
    *,
    id_col: str | None = None,
    date_col: str | None = None,
    price_col: str | None = None,
) -> pd.DataFrame:
    """Read a parquet/CSV price table and validate it (see ``prepare_prices``)."""
    frame = read_table(path, id_col or ID)
    return prepare_prices(frame, str(path), id_col=id_col, date_col=date_col, price_col=price_col)
