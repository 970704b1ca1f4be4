"""``pokewatch gate``: re-score the champion on the candidate's data, apply the rules, and move
the alias only when every rule passes.

The candidate is a ``pokewatch train`` run. The champion is a registered model version named
by ``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``); its model and parameters are rebuilt
from the state it logged (``pokewatch_model.json``), and it is evaluated on the candidate run's
data set with the candidate's policy, metrics and test start, so both sides are scored alike.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.errors import ConfigError
from pokewatch_core.evaluation.horizon_keys import metric_of_key
from pokewatch_core.tracking.gate_rules import Rule, Verdict, check_rules
from pokewatch_core.tracking.runs import full_run_id
from pokewatch_core.tracking.store import retry, sqlite_path, use_store

GATE_TAG = "pokewatch.gate"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass
class GateReport:
    """The outcome of a gate."""

    candidate_run_id: str
    model_name: str
    alias: str | None
    champion_version: str | None  # None: no champion yet
    candidate: dict[str, float]
    champion: dict[str, float] | None
    verdicts: list[Verdict]
    promoted_version: str | None = None

    @property
    def passed(self) -> bool:
        """Whether every rule passed."""
        return all(v.passed for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "candidate_run_id": self.candidate_run_id,
            "model": self.model_name,
            "alias": self.alias,
            "champion_version": self.champion_version,
            "passed": self.passed,
            "promoted_version": self.promoted_version,
            "rules": [
                {
                    "rule": v.rule.text,
                    "metric": v.rule.metric,
                    "candidate": _json_number(v.candidate),
                    "champion": _json_number(v.champion),
                    "threshold": _json_number(v.threshold),
                    "passed": v.passed,
                    "note": v.note,
                }
                for v in self.verdicts
            ],
        }


def _json_number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    match = _MODEL_URI.match(uri.strip())
    if not match:
        raise ConfigError(
            f"--champion {uri!r}: expected models:/NAME@ALIAS (e.g. models:/cards@champion) "
            "or models:/NAME/VERSION"
        )
    alias = match["alias"]
    if alias is not None:
        _check_alias(uri, alias)
    return match["name"], alias, match["version"]


def _check_alias(uri: str, alias: str) -> None:
    """MLflow reserves ``latest`` and ``v<N>`` (they name versions, not aliases): gating
    against one would read "no champion yet" or the candidate itself."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name_reserved(alias)
    except MlflowException as exc:
        raise ConfigError(
            f"--champion {uri!r}: {alias!r} is a reserved alias name in MLflow (it names a "
            "version): use an alias of your own, e.g. models:/NAME@champion, or "
            "models:/NAME/VERSION"
        ) from exc


def _champion_version(client: Any, name: str, alias: str | None, version: str | None) -> Any:
    """The registered version the URI names, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code not in {
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
            "NOT_FOUND",
        }:
            raise
        if alias is None:  # a version number names one that must exist
            raise ConfigError(f"--champion models:/{name}/{version}: no such version") from exc
        return None  # no such model or alias yet: the first candidate becomes the champion


def _data_path(run: Any) -> str:
    """The local file the candidate run evaluated (its dataset input's source); for a run of
    the dask engine also a folder or a glob of parquet files."""
    inputs = run.inputs.dataset_inputs if run.inputs else []
    if not inputs:
        raise ConfigError(f"run {run.info.run_id} has no dataset input: is it a pokewatch run?")
    source = inputs[0].dataset.source
    try:
        location = json.loads(source)
        path = location.get("uri") or location.get("path") or ""
    except (ValueError, AttributeError):
        path = source
    path = unquote(str(path).removeprefix("file://"))
    dask = run.data.params.get("engine") == "dask"
    if dask and path and (Path(path).is_dir() or any(ch in path for ch in "*?[")):
        return path  # its files are listed (and a missing match refused) when read
    if not path or not Path(path).is_file():
        raise ConfigError(
            f"run {run.info.run_id} evaluated {path or source!r}, which is not a file here"
        )
    return path


def _filtered(cls: Any, params: dict[str, str], prefix: str) -> dict[str, str]:
    """The candidate's logged values of ``cls``'s parameters (``prefix.key`` first)."""
    specs = cls.param_specs()
    out = {k: params[k] for k in specs if k in params}
    out.update({k: params[f"{prefix}.{k}"] for k in specs if f"{prefix}.{k}" in params})
    return out


def _inferred(key: str) -> bool:
    """Whether a logged param holds a value a metric inferred (not a user's parameter)."""
    from pokewatch_core.statistics import INFERRED

    return key.startswith(f"{INFERRED}.")


def _check_same_data(table: Any, run: Any, data_path: str) -> None:
    """The file at the candidate's data path must still hold the data it was scored on."""
    from pokewatch_core.analysis.digest import rows_hash
    from pokewatch_core.tracking.log import dataset_digest, rows_digest

    logged = run.inputs.dataset_inputs[0].dataset.digest
    if run.data.params.get("engine") == "dask":  # digested from its partitions' rows
        now = rows_digest(rows_hash(table), list(map(str, table.columns)))
    else:
        now = dataset_digest(table)
    if logged and now != logged:
        raise ConfigError(
            f"{data_path} has changed since run {run.info.run_id} evaluated it (digest {now}, "
            f"logged {logged}): retrain the candidate on the data to gate on"
        )


def _rescore_champion(
    version: Any, candidate: Any, data_path: str, metric_names: list[str]
) -> dict[str, float]:
    import mlflow

    from pokewatch_core.evaluation.runner import evaluate_prepared
    from pokewatch_core.evaluation.spec import EvaluationSpec, parse_test_start
    from pokewatch_core.plugins.registry import get_plugins
    from pokewatch_core.tracking.fair_price import read_components

    model_uri = f"models:/{version.name}/{version.version}"
    folder = Path(retry(mlflow.artifacts.download_artifacts, artifact_uri=model_uri))
    state = folder / "artifacts" / "pokewatch_model.json"
    if not state.is_file():
        raise ConfigError(f"{model_uri} is not a model logged by pokewatch (no {state.name})")
    plugins = get_plugins()
    model_name = json.loads(state.read_text())["model"]["name"]
    if model_name not in plugins.models:
        raise ConfigError(
            f"the champion {model_uri} is a {model_name!r} model, which no installed plugin "
            "provides here: install its plugin where the gate runs"
        )
    model, _ = read_components(state)  # its own policy is not used: the candidate's is
    params = dict(candidate.data.params)
    policy_cls = plugins.policies.get(params.get("policy", DEFAULT_POLICY))
    policy = policy_cls.from_params(_filtered(policy_cls, params, "policy"))
    metrics = {}
    for name in dict.fromkeys(metric_of_key(key) for key in metric_names):
        cls = plugins.metrics.get(name)
        # Values a metric inferred from the data are logged apart (``inferred.<metric>.*``)
        # and never read as parameters: re-scoring infers them again on this data. A run
        # logged before they were kept apart holds the inferred value as a plain parameter
        # (e.g. ``periods_per_year``), which is then taken as given.
        given = _filtered(cls, {k: v for k, v in params.items() if not _inferred(k)}, name)
        metrics[name] = cls.from_params(given)
    columns = {k: params[k] for k in ("id_col", "date_col", "price_col") if k in params}
    table = _read_data(data_path, columns)
    _check_same_data(table, candidate, data_path)
    start = parse_test_start(params.get("test_start"))
    spec = EvaluationSpec(model, policy, metrics, start, logged_backtest(params))
    result = evaluate_prepared(table, spec)
    return {key: result.metrics[key] for key in metric_names if key in result.metrics}


def _read_data(data_path: str, columns: dict[str, str]) -> Any:
    """The candidate's data as one validated table: a file (with the column names the run
    logged, ``id_col`` …), or every parquet file of a folder or glob (a dask run's input),
    each read as the dask engine's workers read it."""
    import pandas as pd

    from pokewatch_core.data.tables import load_prices, prepare_prices
    from pokewatch_core.engines.partitions import input_files

    if Path(data_path).is_file():
        return load_prices(data_path, **columns)
    parts = [load_prices(path) for path in input_files(data_path)]
    return prepare_prices(pd.concat(parts, ignore_index=True), data_path)


def logged_backtest(params: dict[str, str]) -> Any:
    """The backtest options a run logged (its params ``horizon``, ``cutoffs``,
    ``cutoff_count``, ``step``, ``refit``, ``input_size``); the one-step default for a run
    logged without them."""
    from pokewatch_core.evaluation.cutoffs import BacktestOptions, parse_refit

    if "cutoffs" not in params:  # a one-step run (a `horizon` there is a metric's parameter)
        return BacktestOptions()
    windows = int(params["cutoff_count"]) if params.get("cutoffs") == "windows" else None
    refit = params.get("refit", "every")
    if refit.startswith("every ") and refit.endswith(" windows"):
        refit = refit.split()[1]
    size = params.get("input_size", "expanding")
    return BacktestOptions(
        int(params["horizon"]),
        windows,
        int(params["step"]) if windows is not None and "step" in params else None,
        parse_refit(refit),
        None if size == "expanding" else int(size),
    )


def run_gate(
    candidate: str,
    champion_uri: str,
    rules: list[Rule],
    *,
    promote: bool = False,
    tracking_uri: str | None = None,
) -> GateReport:
    """Compare the candidate run with the champion (see the module docstring); with
    ``promote``, point the champion's alias at the candidate's version when every rule
    passes. The verdict is recorded as tags on the candidate run (and its model version)."""
    from mlflow.tracking import MlflowClient

    from pokewatch_core.plugins.registry import get_plugins

    if not rules:
        raise ConfigError("give at least one --rule, e.g. --rule 'rmse<=1.02*champion'")
    name, alias, version_number = parse_model_uri(champion_uri)
    if promote and alias is None:
        raise ConfigError("--promote moves an alias: name the champion as models:/NAME@ALIAS")
    store = use_store(tracking_uri)
    db = sqlite_path(store)
    if db is not None and not db.is_file():
        raise ConfigError(f"no tracking store at {store}: nothing to gate")
    client = MlflowClient()
    run = retry(client.get_run, full_run_id(client, candidate))
    run_id = run.info.run_id
    if run.info.status != "FINISHED":
        raise ConfigError(
            f"run {run_id} is {run.info.status}, not FINISHED: only a complete run can be gated"
        )
    installed = set(get_plugins().metrics.names())
    # the metrics, pooled and per horizon (``rmse_h7``): the champion is re-scored on the
    # candidate's cutoffs, so each key means the same on both sides
    metric_names = [m for m in run.data.metrics if metric_of_key(m) in installed]
    candidate_metrics = {m: float(run.data.metrics[m]) for m in metric_names}
    champion = _champion_version(client, name, alias, version_number)
    champion_metrics = None
    if champion is not None:
        data_path = _data_path(run)
        champion_metrics = _rescore_champion(champion, run, data_path, metric_names)
    verdicts = check_rules(rules, candidate_metrics, champion_metrics)
    report = GateReport(
        run_id,
        name,
        alias,
        None if champion is None else str(champion.version),
        candidate_metrics,
        champion_metrics,
        verdicts,
    )
    candidate_version = _candidate_version(client, name, run_id)
    if promote and report.passed:
        if candidate_version is None:
            candidate_version = _register(client, name, run)
        assert alias is not None
        retry(client.set_registered_model_alias, name, alias, candidate_version.version)
        report.promoted_version = str(candidate_version.version)
    tags = {
        GATE_TAG: "passed" if report.passed else "failed",
        f"{GATE_TAG}.champion": f"{name}/{report.champion_version}"
        if report.champion_version
        else "none",
        f"{GATE_TAG}.rules": "; ".join(r.text for r in rules)[:5000],
    }
    for key, value in tags.items():
        retry(client.set_tag, run_id, key, value)
        if candidate_version is not None:
            retry(client.set_model_version_tag, name, candidate_version.version, key, value)
    return report


def _logged_model_id(client: Any, run: Any) -> str:
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    if not models:
        raise ConfigError(f"run {run.info.run_id} logged no model to promote")
    return str(models[0].model_id)


def _candidate_version(client: Any, name: str, run_id: str) -> Any:
    """The version of registered model ``name`` logged by run ``run_id``, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def _register(client: Any, name: str, run: Any) -> Any:
    import mlflow

    model_id = _logged_model_id(client, run)
    return retry(mlflow.register_model, f"models:/{model_id}", name)
