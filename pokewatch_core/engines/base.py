"""The engine contract: where evaluations run, as a context manager that owns what it starts.

An engine is given its data and options when it is made (and checks them then, before any
work), acquires what it needs on first use or when ``open`` is called (the local engine reads
and validates the table; the dask engine connects to or starts a cluster) and releases all of
it when the ``with`` block that holds it ends. Inside the block it evaluates any number of
``EvaluationSpec`` values on the same data: ``evaluate()`` once, a sweep once per
combination."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pokewatch_core.errors import ConfigError

if TYPE_CHECKING:
    from pokewatch_core.evaluation.runner import EvaluationResult
    from pokewatch_core.evaluation.spec import EvaluationSpec

Progress = Callable[[str], None]


class Engine(ABC):
    """Evaluates specs on one data set. Use it as ``with engine: engine.evaluate(spec)``."""

    name: ClassVar[str]
    parallel_trials: ClassVar[bool] = False
    """Whether a sweep may evaluate several specs at once in forked processes (the local
    engine); an engine that is parallel itself (a cluster) says no."""
    holds_frame: ClassVar[bool] = True
    """Whether results hold the evaluation frame in memory (and so can log a servable
    model)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def open(self, progress: Progress | None = None) -> None:  # noqa: B027 (optional hook)
        """Acquire what evaluations need (read the data, start a cluster), reporting the
        stage to ``progress``; evaluations open the engine themselves if it is not."""

    def check_output(self, output_dir: str | Path | None) -> None:
        """Refuse, before any work, an ``output_dir`` that ``evaluate`` would refuse."""
        if output_dir is not None:
            raise ConfigError(f"the {self.name} engine holds the evaluation frame in memory")

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release everything ``open`` acquired and every folder the engine made."""

    @abstractmethod
    def evaluate(
        self,
        spec: EvaluationSpec,
        *,
        progress: Progress | None = None,
        output_dir: str | Path | None = None,
    ) -> EvaluationResult:
        """Evaluate ``spec`` on the engine's data. ``output_dir``: where an engine that
        writes the evaluation frame to disk writes it (new or empty; the caller's)."""

    def release(self, result: EvaluationResult) -> None:  # noqa: B027 (optional hook)
        """Free what ``result`` left behind once its figures are kept (a sweep's trials)."""

    @property
    def params(self) -> dict[str, Any]:
        """The run parameters the engine adds to a logged run (none for the local engine)."""
        return {}
