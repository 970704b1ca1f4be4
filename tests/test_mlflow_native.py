"""MLflow-native records of ``pokewatch train``: metrics linked to the logged model and the
evaluated dataset (so models rank by a metric on a dataset), experiments tagged as
model-training ones with a description, runs with a short description."""

from __future__ import annotations

import pytest

from pokewatch_core.tracking.store import EXPERIMENT_TAGS, NOTE_TAG
from tests.conftest import main_in_process


@pytest.fixture(scope="module")
def two_trainings(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('native') / 'store.db'}"
    for window in ("2", "5"):
        main_in_process("train", "--tracking-uri", uri, "-p", f"window_size={window}")
    return uri


@pytest.mark.slow  # two trainings on a new store: CI's slow run has it
def test_metrics_are_linked_to_the_logged_model_and_the_dataset(two_trainings):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=two_trainings)
    experiment = client.get_experiment_by_name("pokewatch_baseline")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2
    for run in runs:
        (model,) = client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
        )
        logged = client.get_logged_model(model.model_id)
        assert logged.name == "baseline_model"  # the baseline's own artifact_name
        assert logged.tags[NOTE_TAG] == run.data.tags[NOTE_TAG]
        linked = {m.key: m for m in logged.metrics}
        assert set(linked) == set(run.data.metrics)  # every metric, also on the run
        (dataset_input,) = run.inputs.dataset_inputs
        for key, metric in linked.items():
            assert metric.dataset_name == dataset_input.dataset.name == "sv2a_sample.parquet"
            assert metric.dataset_digest == dataset_input.dataset.digest
            assert metric.value == pytest.approx(run.data.metrics[key], nan_ok=True)
    ranked = client.search_logged_models(
        [experiment.experiment_id],
        order_by=[
            {"field_name": "metrics.rmse", "ascending": True, "dataset_name": "sv2a_sample.parquet"}
        ],
    )
    by_run = {r.info.run_id: r.data.metrics["rmse"] for r in runs}
    values = [by_run[m.source_run_id] for m in ranked]
    assert values == sorted(values) and len(values) == 2


@pytest.mark.slow  # two trainings on a new store: CI's slow run has it
def test_experiment_and_runs_carry_kind_and_descriptions(two_trainings):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=two_trainings)
    experiment = client.get_experiment_by_name("pokewatch_baseline")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags[NOTE_TAG] == EXPERIMENT_TAGS[NOTE_TAG]
    for run in client.search_runs([experiment.experiment_id]):
        note = run.data.tags[NOTE_TAG]
        assert note.startswith("baseline_moving_average with policy threshold on sv2a_sample")
        assert f"rmse {run.data.metrics['rmse']:.6g}" in note


def test_train_prints_the_link_to_the_runs_table(run_cli, store):
    out = run_cli("train", "--tracking-uri", store, "--metric", "rmse")
    assert out.exit_code == 0, out.stderr
    assert "then the runs: http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning" in (
        out.stdout
    )


@pytest.mark.slow  # a few seconds: CI's slow run has it
def test_an_existing_experiment_without_a_kind_gets_one(tmp_path, run_cli):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'old.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("mine", tags={NOTE_TAG: "my own words"})
    out = run_cli("train", "--tracking-uri", uri, "--experiment-name", "mine")
    assert out.exit_code == 0, out.stderr
    tags = client.get_experiment_by_name("mine").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert tags[NOTE_TAG] == "my own words"  # the user's description is kept
