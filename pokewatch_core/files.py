"""Writing files so that a failure never leaves a half-written one behind, and temporary
folders that a killed process does not leave behind for good."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokewatch_core.errors import DataError

if TYPE_CHECKING:  # pandas is imported by the callers that write tables, not at start-up
    import pandas as pd


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


# Temporary folders: $TMPDIR/pokewatch-<kind>-<host>-<pid>-<start>-<random>. The name says which
# process made it (the host, as a hash; the pid and the process's start time, so a reused pid
# is not mistaken for the owner): a folder whose process is gone (kill -9 leaves it behind) is
# removed by the next PokeWatch process that makes one.
TEMP_PREFIX = "pokewatch-"
_OWNED = re.compile(r"pokewatch-[a-z]+-([0-9a-f]{8})-(\d+)-(\d+)-[a-z0-9_]{8}")
# Folders of earlier versions (no owner in the name: ``pokewatch-`` or ``pokewatch-dask-`` then
# tempfile's 8 random characters, mode 0700), removed when untouched for a day.
_UNOWNED = re.compile(r"pokewatch-(?:dask-|frames-)?[a-z0-9_]{8}")
UNOWNED_STALE_SECONDS = 24 * 3600.0


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None where
    unknown: with the pid it names one process, even after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def _host() -> str:
    return hashlib.sha1(socket.gethostname().encode(), usedforsecurity=False).hexdigest()[:8]


def _owner_prefix(kind: str) -> str:
    pid = os.getpid()
    return f"{TEMP_PREFIX}{kind}-{_host()}-{pid}-{process_start(pid) or 0}-"


def temporary_folder(kind: str) -> str:
    """A new temporary folder (``tempfile.mkdtemp``) named after this process; removes the
    stale ones of dead processes first (:func:`reap_stale_folders`). ``kind``: lowercase
    letters saying what it holds."""
    reap_stale_folders()
    return tempfile.mkdtemp(prefix=_owner_prefix(kind))


def temporary_directory(kind: str) -> tempfile.TemporaryDirectory[str]:
    """:func:`temporary_folder` as a ``tempfile.TemporaryDirectory`` (removed on exit)."""
    reap_stale_folders()
    return tempfile.TemporaryDirectory(prefix=_owner_prefix(kind))


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OverflowError:
        return False  # no such pid
    current = process_start(pid)
    return start == "0" or current is None or current == start


def reap_stale_folders(root: str | Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the temporary PokeWatch folders in ``root`` (default: the temporary directory)
    that no live process owns: of this host and user, made by a process that is gone, or
    nameless leftovers of earlier versions untouched for a day. Returns those removed; never
    raises (a folder it cannot remove stays). One directory listing: cheap."""
    folder = Path(root if root is not None else tempfile.gettempdir())
    host, uid = _host(), os.getuid()
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            continue
        owned = _OWNED.fullmatch(entry.name)
        if owned:
            stale = owned[1] == host and not _alive(int(owned[2]), owned[3])
        else:
            stale = (
                _UNOWNED.fullmatch(entry.name) is not None
                and stat.S_IMODE(info.st_mode) == 0o700
                and now - info.st_mtime > UNOWNED_STALE_SECONDS
            )
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.exists(entry.path):
                removed.append(Path(entry.path))
    return removed
