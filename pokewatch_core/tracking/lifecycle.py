"""The lifecycle of one MLflow run, written once for ``pokewatch train``, the sweep's parent
and each of its children (docs/failure-modes.md):

    with run_lifecycle(run_id) as run:
        run.stage = "dataset"
        ...

The block records the stage it is in. Leaving it, the run is ended FINISHED only when the
block completed (after ``check_interrupted``: a signal whose exception Python dropped cannot
let it finish), FAILED with the tag ``pokewatch.failed_stage`` on an ``Exception`` and KILLED
with the same tag on Ctrl-C, SIGTERM or SIGHUP (any other ``BaseException``); the exception
goes on. An ``Exception`` raised while a signal is pending (a library that caught the signal's
exception and raised its own) ends the run KILLED and raises the interruption instead. A late
signal after FINISHED was recorded leaves the run FINISHED.

The status and the tag go through the client with retries; ``mlflow.end_run`` then takes the
run off MLflow's active-run stack even if the store no longer answers: MLflow's exit handler
ends a run still active when the process exits FINISHED, so it must never see an incomplete one.

mlflow is imported inside functions only, as everywhere in this package."""

from __future__ import annotations

import contextlib
from types import TracebackType

from pokewatch_core.interrupts import check_interrupted
from pokewatch_core.tracking.store import retry, server_calls

FAILED_STAGE_TAG = "pokewatch.failed_stage"
FIRST_STAGE = "params"
END_STAGE = "end"  # the block completed: the run is being ended FINISHED


def release_interrupted_writes(exc: BaseException) -> None:
    """Let go of what the frames ``exc`` unwound still hold. A signal can land while a store
    write is between its statements: its SQLite connection, reachable only from those frames,
    then keeps the database's write lock, and every call that ends the run would wait on it
    (20 s a try). Clearing the finished frames' locals and collecting closes that connection,
    which rolls its transaction back and frees the lock."""
    import gc
    import traceback

    traceback.clear_frames(exc.__traceback__)  # frames still running are skipped
    gc.collect()


def status_of(exc: BaseException) -> str:
    """The status a run ends with when ``exc`` stops it: FAILED for an ``Exception``, KILLED
    for an interruption (KeyboardInterrupt, ``Terminated``) or any other ``BaseException``."""
    return "FAILED" if isinstance(exc, Exception) else "KILLED"


class RunLifecycle:
    """The lifecycle of run ``run_id`` (see the module docstring), as a context manager.

    ``stage`` names the stage under way (the failure tag); ``status`` is the status the run
    was ended with, None while it is open, and ``recorded`` whether the store took it (a store
    that no longer answers leaves the run RUNNING there). Children made with ``child`` that
    are still open when this run fails are ended with its status and stage."""

    def __init__(self, run_id: str, stage: str = FIRST_STAGE) -> None:
        self.run_id = run_id
        self.stage = stage
        self.status: str | None = None
        self.recorded = False
        self._children: list[RunLifecycle] = []

    def child(self, run_id: str) -> RunLifecycle:
        """The lifecycle of a child run of this one."""
        lifecycle = RunLifecycle(run_id)
        self._children.append(lifecycle)
        return lifecycle

    def __enter__(self) -> RunLifecycle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            release_interrupted_writes(exc)
            if isinstance(exc, Exception):
                try:  # a signal whose exception was lost, or turned into this one, kills it
                    check_interrupted()
                except BaseException as interruption:
                    self._stop(status_of(interruption))
                    raise interruption from exc
            self._stop(status_of(exc))
            return  # the exception goes on
        self.stage = END_STAGE
        try:
            check_interrupted()  # a signal whose exception Python dropped must not finish it
            self._finish()
        except BaseException as late:
            if self.status != "FINISHED":
                self._stop(status_of(late))
            else:  # complete and recorded: a late signal does not undo that
                self._pop()
            raise

    def _finish(self) -> None:
        from mlflow.tracking import MlflowClient

        retry(MlflowClient().set_terminated, self.run_id, "FINISHED")
        self.status = "FINISHED"
        self.recorded = True
        self._pop()

    def _pop(self) -> None:
        """Take this run off MLflow's active-run stack (recorded: nothing more is written)."""
        import mlflow

        with contextlib.suppress(Exception):
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run()

    def _stop(self, status: str) -> None:
        """End the run, and its open children, with ``status`` and the stage tag, whatever
        fails; ``mlflow.end_run`` then pops MLflow's active run, if any."""
        for child in self._children:
            if child.status is None:
                child.stage = self.stage
                child._stop(status)
        self.status = status
        self.recorded = _stop_run(self.run_id, status, self.stage)


def run_lifecycle(run_id: str) -> RunLifecycle:
    """The lifecycle of run ``run_id``, begun at the stage ``params``: ``with
    run_lifecycle(run_id) as run: run.stage = ...``."""
    return RunLifecycle(run_id)


def _stop_run(run_id: str, status: str, stage: str) -> bool:
    """End run ``run_id`` with ``status`` and the stage tag, whatever fails: the client with
    retries (not interruptible), then ``mlflow.end_run``, which takes MLflow's active run off
    its stack even if the store no longer answers. Returns whether the store recorded the
    status."""
    import mlflow
    from mlflow.tracking import MlflowClient

    recorded = False
    with contextlib.suppress(Exception):
        client = MlflowClient()
        retry(client.set_tag, run_id, FAILED_STAGE_TAG, stage, interruptible=False)
        retry(client.set_terminated, run_id, status, interruptible=False)
        recorded = True
    with contextlib.suppress(Exception), server_calls():  # a server gone: one short attempt
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:  # never someone else's run
            mlflow.end_run(status=status)
    return recorded
