"""Writing files so that a failure never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
