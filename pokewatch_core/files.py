"""Writing files so that a failure never leaves a half-written one behind."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pokewatch_core.errors import DataError


def atomic_write_table(frame: pd.DataFrame, output: Path) -> None:
    """Write ``frame`` as parquet (or CSV for ``.csv``) via a temporary file and a rename,
    creating missing parent folders."""
    suffix = output.suffix.lower()
    if suffix not in {".parquet", ".pq", ".csv"}:
        raise DataError(f"{output}: unsupported output type '{suffix}' (use .parquet or .csv)")
    parent = output.parent if str(output.parent) else Path(".")
    try:  # `--output data/processed.parquet` on a fresh checkout: make data/
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{output}: cannot create directory {parent}: {exc.strerror}") from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A text cell starting with one of these is a formula to a spreadsheet (CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_report_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a report table that people open in a spreadsheet: every text cell quoted (a
    ``\r`` in a card id stays inside its cell) and a text cell that would start a formula
    prefixed with ``'`` (OWASP's advice); numbers are written as they are."""
    safe = frame.copy(deep=False)
    for name in safe.columns:
        column = safe[name]
        if column.dtype.kind in "biufcmM" or column.dtype == bool:
            continue
        safe[name] = column.map(_cell)
    safe.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _number(value):
        return "'" + value
    return value


def _number(text: str) -> bool:
    """Whether ``text`` is a plain number (``-0.5``): a spreadsheet reads it as one."""
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text
