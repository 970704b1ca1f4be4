"""The tracking store: which one (URI resolution and the run options checked up front), whether
it answers (one reachability check per command, carried as a ``Store``), how to talk to it
(retries of transient errors, the SQLite first-contact lock), where runs go (experiments) and
who owns a run (owner tags, healing of runs whose process is gone).

mlflow is imported inside functions only, as everywhere in this package."""

from __future__ import annotations

import contextlib
import io
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pokewatch_core.defaults import DEFAULT_EXPERIMENT
from pokewatch_core.errors import ConfigError, TrackingError
from pokewatch_core.files import process_start
from pokewatch_core.interrupts import check_interrupted

NOTE_TAG = "mlflow.note.content"  # the description MLflow's UI shows for runs and experiments
# Experiments PokeWatch creates are model-training ones: the MLflow UI opens them on the runs
# table, not on the GenAI (traces) overview.
EXPERIMENT_TAGS = {
    "mlflow.experimentKind": "custom_model_development",
    NOTE_TAG: (
        "Evaluations logged by PokeWatch (pokewatch train): one run per evaluation of a "
        "card price model, with its parameters, the metrics (also linked to the logged model "
        "and the evaluated dataset), plots, a summary, the evaluation tables and the model "
        "as an MLflow pyfunc that serves fair prices and BUY/SELL/HOLD signals."
    ),
}
HOST_TAG, PID_TAG, PID_START_TAG = "pokewatch.host", "pokewatch.pid", "pokewatch.pid_start"
ABANDONED_TAG = "pokewatch.abandoned"
T = TypeVar("T")


def resolve_tracking_uri(explicit: str | None = None) -> str | None:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the same in ``./.env``, else
    None (MLflow's own default: a SQLite store in the working directory)."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    env_file = Path(".env")
    if env_file.is_file():
        from dotenv import dotenv_values

        value = dotenv_values(env_file).get("MLFLOW_TRACKING_URI")
        if value:
            return str(value)
    return None


# MLflow's tracking stores (a "+driver" suffix, as in postgresql+psycopg, is allowed).
TRACKING_SCHEMES = (
    "file",
    "sqlite",
    "postgresql",
    "mysql",
    "mssql",
    "http",
    "https",
    "databricks",
    "databricks-uc",
    "uc",
)


def check_run_options(
    experiment_name: str,
    tracking_uri: str | None,
    register_model: str | None,
    alias: str,
) -> None:
    """Refuse, with a ``ConfigError``, the run options MLflow would only reject after a whole
    evaluation (or halfway through logging): an empty or invalid experiment name, a tracking
    URI of no known store, an invalid registered-model or alias name."""

    from mlflow.exceptions import MlflowException
    from mlflow.utils import validation

    if not experiment_name.strip():
        raise ConfigError("--experiment-name must not be empty")
    if len(experiment_name) > MAX_EXPERIMENT_NAME:
        raise ConfigError(
            f"--experiment-name: {len(experiment_name)} characters (at most "
            f"{MAX_EXPERIMENT_NAME}, what a database store holds)"
        )
    check_tracking_uri(resolve_tracking_uri(tracking_uri))
    checks: list[tuple[str, str, Callable[[str], None]]] = [
        ("--experiment-name", experiment_name, validation._validate_experiment_name)
    ]
    if register_model is not None:
        checks += [
            ("--register-model", register_model, validation._validate_model_name),
            ("--alias", alias, validation._validate_model_alias_name),
            ("--alias", alias, validation._validate_model_alias_name_reserved),
        ]
    for option, value, check in checks:
        try:
            check(value)
        except MlflowException as exc:
            raise ConfigError(f"{option} {value!r}: {exc.message}") from exc


def _check_default_store() -> None:
    """MLflow 3's default store is ``./mlflow.db``, but a folder whose ``./mlruns`` holds runs
    gets the file store, which it then refuses when the run is logged: say so first."""
    import mlflow

    default = mlflow.get_tracking_uri()
    if default.startswith("file:"):
        try:
            check_tracking_uri(default)
        except ConfigError as exc:
            raise ConfigError(
                f"no --tracking-uri: MLflow's default here is the file store {default} (this "
                "folder's ./mlruns holds runs), which MLflow 3 refuses: give --tracking-uri "
                "sqlite:///mlflow.db (or set MLFLOW_ALLOW_FILE_STORE=true)"
            ) from exc


def check_tracking_uri(uri: str | None) -> None:
    """Refuse (``ConfigError``) a tracking URI MLflow would refuse only later, or retry on
    for minutes: a scheme of no store, a file store (MLflow 3 refuses it unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set), a SQLite database that is a folder or no file."""
    from urllib.parse import urlparse

    if not uri:
        return
    scheme = urlparse(uri).scheme
    if scheme and scheme.split("+")[0] not in TRACKING_SCHEMES:
        raise ConfigError(
            f"unsupported tracking URI scheme {scheme!r} in {uri!r} "
            f"(use a path or one of: {', '.join(TRACKING_SCHEMES)})"
        )
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true")
    bare = uri.strip() in TRACKING_SCHEMES  # `databricks`, `uc`: a store named by its scheme
    if scheme in ("", "file") and not bare and not allowed:
        raise ConfigError(
            f"--tracking-uri {uri!r} is a file store, which MLflow 3 refuses (maintenance "
            "mode): use a database such as sqlite:///mlflow.db (or set "
            "MLFLOW_ALLOW_FILE_STORE=true)"
        )
    db = sqlite_path(uri)
    if db is not None and db.exists() and not db.is_file():
        kind = "a folder" if db.is_dir() else "not a regular file"
        raise ConfigError(f"--tracking-uri {uri!r}: the SQLite database {db} is {kind}")


@dataclass(frozen=True)
class Store:
    """A tracking store resolved (``resolve_tracking_uri``) and found reachable
    (``check_reachable``), as ``reach_store`` returns it. The logging functions take one in
    place of a URI and then neither resolve nor check again: one check per command.
    ``uri`` None is MLflow's own default store."""

    uri: str | None


def reach_store(tracking_uri: str | None = None) -> Store:
    """Resolve the tracking URI, check it (``check_tracking_uri``) and that its server
    answers (``TrackingError`` if not)."""
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    if uri is None:
        _check_default_store()
        uri = _default_sqlite_store()
    check_reachable(uri)
    return Store(uri)


def _default_sqlite_store() -> str | None:
    """MLflow's default store, ``./mlflow.db``, named by its absolute path as it is, or None
    (MLflow's own default) where MLflow's default is another store or the path holds ``%``,
    ``?`` or ``#`` (which a URI cannot hold as they are). MLflow names it percent-encoded
    (``sqlite:////x/a%20b/mlflow.db`` in a folder ``a b``), and every time it opens such a
    store it creates the parent folder of the path *as encoded*: an empty ``a%20b/`` beside the
    working folder. Not relative: MLflow keeps one database engine per URI for the life of
    the process, so ``sqlite:///mlflow.db`` would stay the first folder's file after a
    ``chdir``."""
    import mlflow
    from mlflow.utils.file_utils import path_to_local_sqlite_uri

    path = os.path.abspath("mlflow.db")
    if mlflow.get_tracking_uri() != path_to_local_sqlite_uri(path) or set("%?#") & set(path):
        return None
    return f"sqlite:///{path}"


def use_store(tracking_uri: str | Store | None) -> str:
    """Point MLflow at the store: a ``Store`` as it is, a URI (or None) once resolved and
    checked (``reach_store``). Returns the URI in effect."""
    import mlflow

    store = tracking_uri if isinstance(tracking_uri, Store) else reach_store(tracking_uri)
    if store.uri:
        mlflow.set_tracking_uri(store.uri)
    return str(mlflow.get_tracking_uri())


def check_reachable(uri: str | None, timeout: float = 10.0) -> None:
    """For an HTTP tracking URI, fail fast (``TrackingError``) if the server does not answer,
    instead of MLflow's minutes of retries; for a database server's URI, that its port
    accepts a connection. Other URIs are not checked."""
    if uri and uri.startswith(DATABASE_SERVERS):
        _check_database_port(uri, timeout)
        return
    if uri is None or server_uri(uri) is None:
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answers; /health may just be routed elsewhere
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow tracking server at {uri}: {reason}") from exc


DATABASE_SERVERS = ("postgresql", "mysql", "mssql")
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _check_database_port(uri: str, timeout: float) -> None:
    """``TrackingError`` when the database server of ``uri`` accepts no connection (MLflow
    retries such a store for minutes before it says so)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    host = parsed.hostname
    if not host or "unix_socket=" in parsed.query or "host=/" in parsed.query:
        return  # a Unix socket or a driver's own default: left to the driver
    try:
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme.split("+")[0]]
    except ValueError as exc:
        raise ConfigError(f"--tracking-uri: bad port in {parsed.netloc!r}") from exc
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise TrackingError(
            f"cannot reach the tracking database at {host}:{port}: {exc.strerror or exc}"
        ) from exc


_TRANSIENT = ("database is locked", "database table is locked", "already exists")

# How long PokeWatch waits, in all, for a tracking server that stops answering mid-command.
SERVER_WAIT_VAR = "POKEWATCH_SERVER_WAIT"
DEFAULT_SERVER_WAIT = 90
# What an HTTP request that gets no answer looks like, in the errors MLflow raises.
_UNANSWERED = (
    "Max retries exceeded",
    "timed out",
    "Connection aborted",
    "Connection refused",
    "RemoteDisconnected",
    "ConnectionError",
)
# The server a command talks to: its URI once it failed to answer ("unanswered", with the
# reason), the MLflow HTTP settings PokeWatch chose ("defaulted": the user set the others),
# the server the waiting notice was printed for ("noticed": once a command).
_server: dict[str, Any] = {"unanswered": None, "reason": "", "defaulted": {}, "noticed": None}


def server_wait() -> int:
    """``POKEWATCH_SERVER_WAIT`` (seconds, default 90): the longest a command waits for a
    tracking server that stopped answering before it gives up."""
    text = os.environ.get(SERVER_WAIT_VAR, "").strip()
    if not text:
        return DEFAULT_SERVER_WAIT
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{SERVER_WAIT_VAR}={text!r}: a number of seconds, at least 1")
    return value


def http_settings(wait: int) -> dict[str, str]:
    """MLflow's HTTP request settings for a total wait of ``wait`` seconds: three attempts
    of a fifth of it each (with a 2 s backoff from 30 s up) for the request that finds the
    server gone, leaving a tenth for each of the two short attempts that end the run."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1" if wait >= 30 else "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, wait // 5)),
    }


def quick_settings(wait: int) -> dict[str, str]:
    """One short attempt: a request to a server that already failed to answer."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, wait // 10)),
    }


def bound_server_waits() -> None:
    """Set MLflow's HTTP retries and timeout (``http_settings``) for the total wait
    ``server_wait()``, each only where the user did not set it (MLflow's own defaults wait
    minutes: 7 retries, 120 s a request)."""
    settings = http_settings(server_wait())
    chosen = {name: value for name, value in settings.items() if name not in os.environ}
    os.environ.update(chosen)
    _server["defaulted"] = chosen


def server_uri(uri: str | None) -> str | None:
    """``uri`` when it names a tracking server (``http://``, ``https://``), else None."""
    return uri if uri and uri.startswith(("http://", "https://")) else None


def _http_uri() -> str | None:
    import mlflow

    return server_uri(str(mlflow.get_tracking_uri()))


def unanswered(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception in its chain) says an HTTP request got no answer."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = f"{type(current).__name__}: {current}"
        if "error responses" in text:  # it answered, with errors (urllib3: "too many 500 …")
            return False
        if any(sign in text for sign in _UNANSWERED):
            return True
        current = current.__cause__ or current.__context__
    return False


def _say_waiting(uri: str) -> None:
    if _server["noticed"] == uri:
        return
    _server["noticed"] = uri
    from pokewatch_core.terminal import printable

    sys.stderr.write(
        f"pokewatch: waiting for the tracking server at {printable(uri)} (no answer yet; "
        f"giving up after about {server_wait()} s, {SERVER_WAIT_VAR})\n"
    )
    sys.stderr.flush()


@contextmanager
def server_calls(uri: str | None = None) -> Iterator[str | None]:
    """Around calls to the tracking server: when one waits, one line on stderr says what for
    (once a command); when the server already failed to answer, each request of the block
    gets one short attempt (``quick_settings``, where PokeWatch chose the settings). Yields
    the server's URI (``uri``, else MLflow's; None for other stores: nothing is done)."""
    uri = server_uri(uri) if uri else _http_uri()  # given, or MLflow's
    if uri is None:
        yield None
        return
    wait = server_wait()
    timer = threading.Timer(min(5.0, max(0.5, wait / 10)), _say_waiting, (uri,))
    timer.daemon = True
    saved: dict[str, str] = {}
    if _server["unanswered"] == uri:
        quick = quick_settings(wait)
        saved = {name: os.environ[name] for name in _server["defaulted"] if name in os.environ}
        os.environ.update({name: quick[name] for name in saved if name in quick})
    timer.start()
    try:
        yield uri
    finally:
        timer.cancel()
        os.environ.update(saved)


def note_unanswered(uri: str | None, exc: BaseException) -> None:
    """Remember that the server at ``uri`` did not answer (``exc``): further requests get one
    short attempt each, so a command's total wait stays within ``server_wait()``."""
    if uri is not None and unanswered(exc):
        _server["unanswered"] = uri
        _server["reason"] = _short_reason(exc)


def _short_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "timed out" in text:
        return "no answer within the request timeout"
    if "Connection refused" in text:
        return "connection refused"
    return "the connection was closed or failed"


def server_failure(uri: str) -> TrackingError:
    """The one-line error of a server that stopped answering."""
    return TrackingError(
        f"the tracking server at {uri} stopped answering ({_server['reason']}; waited about "
        f"{server_wait()} s at most, {SERVER_WAIT_VAR})"
    )


def retry(
    call: Callable[..., T],
    *args: Any,
    attempts: int = 8,
    interruptible: bool = True,
    **kwargs: Any,
) -> T:
    """Run ``call``, retrying transient store errors (SQLite locks, creation races) with
    bounded, jittered exponential backoff. An ``interruptible`` call first raises a pending
    SIGTERM/SIGHUP (see ``interrupts``); the calls that end a failed run are not. A call to
    a tracking server that gets no answer is a ``TrackingError`` saying so (see
    ``server_calls``)."""
    delay = 0.05
    for attempt in range(attempts):
        if interruptible:
            check_interrupted()
        with server_calls() as uri:
            try:
                result = call(*args, **kwargs)
                if uri is not None and _server["unanswered"] == uri:
                    _server["unanswered"] = None  # it answers again
                return result
            except Exception as exc:
                note_unanswered(uri, exc)
                if uri is not None and unanswered(exc):
                    raise server_failure(uri) from exc
                if attempt == attempts - 1 or not any(t in str(exc) for t in _TRANSIENT):
                    raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (percent-decoded: MLflow writes the default
    store of a folder whose path has a space as ``%20``), None for other stores."""
    from urllib.parse import unquote

    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri.removeprefix("sqlite:///").split("?")[0]))  # no query options


@contextmanager
def store_init_lock(uri: str) -> Iterator[None]:
    """Serialise the first contact with a SQLite store across processes: MLflow creates and
    migrates the schema on first use, and concurrent migrations corrupt it."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with (db.parent / f"{db.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(name: str) -> str:
    """The id of the experiment ``name``, created if missing; a deleted one is refused.

    Not ``mlflow.set_experiment``: when another process creates the experiment between its
    lookup and its create, it returns without activating it, and the run lands in the
    Default experiment."""
    from mlflow.entities import LifecycleStage
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, tags=EXPERIMENT_TAGS))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise TrackingError(f"experiment {name!r} was created but cannot be found")
    if experiment.lifecycle_stage == LifecycleStage.ACTIVE:
        for key, value in EXPERIMENT_TAGS.items():  # experiments of older versions
            if key not in experiment.tags:
                client.set_experiment_tag(experiment.experiment_id, key, value)
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise ConfigError(
            f"experiment {name!r} is deleted; restore it or choose another --experiment-name"
        )
    return str(experiment.experiment_id)


def run_target(experiment_name: str | None) -> tuple[str | None, Any]:
    """``(experiment id, None)`` for a new run; ``(None, None)`` to log into the enclosing
    ``mlflow run`` run (``MLFLOW_RUN_ID``); ``(experiment id, enclosing run)`` for a new run
    beside an enclosing run that is in another experiment.

    With no name, the enclosing run's experiment counts as requested unless it is MLflow's
    Default experiment (``mlflow run`` given no experiment)."""
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.default_experiment import DEFAULT_EXPERIMENT_ID

    enclosing = None
    if os.environ.get("MLFLOW_RUN_ID"):
        client = MlflowClient()
        enclosing = client.get_run(os.environ["MLFLOW_RUN_ID"])
        experiment = client.get_experiment(enclosing.info.experiment_id)
        if experiment_name == experiment.name or (
            experiment_name is None and experiment.experiment_id != DEFAULT_EXPERIMENT_ID
        ):
            return None, None
    return ensure_experiment(experiment_name or DEFAULT_EXPERIMENT), enclosing


def tracking_client(tracking_uri: str | Store | None) -> Any:
    """An ``MlflowClient`` of the store ``tracking_uri`` names (see ``resolve_tracking_uri``),
    to read from: checked first (``reach_store``; a ``Store`` is already checked), and a
    SQLite store that does not exist is a ``ConfigError`` rather than created empty."""
    import mlflow
    from mlflow.tracking import MlflowClient

    store = tracking_uri if isinstance(tracking_uri, Store) else reach_store(tracking_uri)
    uri = store.uri or mlflow.get_tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ConfigError(f"no tracking store at {uri}: no runs to read")
    return MlflowClient(tracking_uri=uri)


RESERVED_TAG_PREFIXES = ("mlflow.", "pokewatch.")


def check_user_tags(tags: dict[str, str] | None) -> None:
    """Refuse (``ConfigError``) a user tag in MLflow's or PokeWatch's own namespace: such a
    tag would forge a gate verdict, a parent run or an abandoned mark."""
    for key, value in (tags or {}).items():
        if key.strip().lower().startswith(RESERVED_TAG_PREFIXES):
            raise ConfigError(
                f"tag {key!r} is reserved (keys starting with 'mlflow.' or 'pokewatch.' are "
                "MLflow's and PokeWatch's own): choose another key"
            )
        # MLflow's limits, which a database store enforces only when the run is logged
        if len(key) > MAX_TAG_KEY:
            raise ConfigError(
                f"tag key {key[:40]!r}…: {len(key)} characters (at most {MAX_TAG_KEY})"
            )
        if len(str(value)) > MAX_TAG_VALUE:
            raise ConfigError(
                f"tag {key!r}: a value of {len(str(value)):,} characters "
                f"(at most {MAX_TAG_VALUE:,})"
            )


# The lengths a database store holds (MLflow's limits; a PostgreSQL store fails past them with
# a raw SQL error after the evaluation): tag keys and values, run and experiment names
MAX_TAG_KEY, MAX_TAG_VALUE, MAX_RUN_NAME, MAX_EXPERIMENT_NAME = 250, 8000, 250, 256


def check_run_name(run_name: str | None) -> None:
    """Refuse (``ConfigError``) a run name longer than a database store holds."""
    if run_name is not None and len(run_name) > MAX_RUN_NAME:
        raise ConfigError(
            f"--run-name: {len(run_name)} characters (at most {MAX_RUN_NAME}, what a database "
            "store holds)"
        )


def run_owner_tags() -> dict[str, str]:
    """Tags naming the process that owns a run: host, pid and the process's start time."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start = process_start(os.getpid())
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def _owner_alive(tags: dict[str, str]) -> bool:
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    recorded = tags.get(PID_START_TAG)
    current = process_start(pid)
    return recorded is None or current is None or recorded == current


def heal_abandoned_runs(tracking_uri: str | None = None) -> list[str]:
    """Mark FAILED (tag ``pokewatch.abandoned=true``) the RUNNING runs started by PokeWatch on
    this host whose process is gone (killed with SIGKILL, power loss): a signal PokeWatch can
    catch ends its run itself. Returns the ids of the runs healed. Never raises: healing is a
    courtesy of the next command, not its purpose."""
    try:
        import mlflow

        uri = resolve_tracking_uri(tracking_uri) or mlflow.get_tracking_uri()
        db = sqlite_path(uri)
        if db is not None and not db.exists():
            return []  # no store yet: nothing to heal, and nothing to create
        with store_init_lock(uri), server_calls(uri) as server:
            from mlflow.tracking import MlflowClient

            try:
                return _heal(MlflowClient(tracking_uri=uri))
            except Exception as exc:
                note_unanswered(server, exc)
                raise
    except Exception:
        return []


def _heal(client: Any) -> list[str]:
    from mlflow.entities import ViewType

    host = socket.gethostname().replace("'", "")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    healed = []
    for start in range(0, len(experiments), 100):  # MLflow's limit per search
        runs = client.search_runs(
            experiments[start : start + 100],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
            run_view_type=ViewType.ALL,
            max_results=1000,
        )
        for run in runs:
            if _owner_alive(dict(run.data.tags)):
                continue
            client.set_tag(run.info.run_id, ABANDONED_TAG, "true")
            # MLflow prints "View run …" links to stdout when it ends a run on a server:
            # healing is reported by the caller, and `compare --json`'s stdout is JSON only
            with contextlib.redirect_stdout(io.StringIO()):
                client.set_terminated(run.info.run_id, "FAILED")
            healed.append(run.info.run_id)
    return healed
