"""Components from names, classes or instances, with their parameters routed to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pokewatch_core.components import KIND_BASES, Component, Metric, Model, SignalPolicy
from pokewatch_core.defaults import DEFAULT_POLICY
from pokewatch_core.errors import ConfigError
from pokewatch_core.plugins.registry import get_plugins


def _route_params(
    params: Mapping[str, Any] | None, targets: dict[str, type[Component] | Component]
) -> dict[str, dict[str, Any]]:
    """Split ``params`` by component: ``key`` goes to every component that declares it,
    ``model.key`` / ``policy.key`` / ``<metric>.key`` to that one only."""
    routed: dict[str, dict[str, Any]] = {label: {} for label in targets}
    specs = {label: type_of(t).param_specs() for label, t in targets.items()}
    given: dict[tuple[str, str], str] = {}

    def route(label: str, bare: str, key: str, value: Any) -> None:
        first = given.setdefault((label, bare), key)
        if first != key:
            raise ConfigError(
                f"parameter {bare!r} of {label} is given twice ({first!r} and {key!r})"
            )
        routed[label][bare] = value

    for raw_key, value in (params or {}).items():
        key = str(raw_key)
        prefix, _, bare = key.rpartition(".")
        if prefix:
            if prefix not in targets:
                raise ConfigError(
                    f"parameter {key!r}: no component {prefix!r} "
                    f"(use one of: {', '.join(sorted(targets))})"
                )
            if bare not in specs[prefix]:
                valid = ", ".join(sorted(specs[prefix])) or "none"
                raise ConfigError(f"unknown parameter {key!r} (valid for {prefix}: {valid})")
            route(prefix, bare, key, value)
            continue
        owners = [label for label, s in specs.items() if key in s]
        if not owners:
            names = sorted({p for s in specs.values() for p in s})
            raise ConfigError(f"unknown parameter {key!r} (valid: {', '.join(names) or 'none'})")
        for label in owners:
            route(label, key, key, value)
    return routed


def type_of(spec: type[Component] | Component) -> type[Component]:
    """The class of a component given as a class or an instance."""
    return spec if isinstance(spec, type) else type(spec)


def _component(kind: str, spec: Any) -> type[Component] | Component:
    if isinstance(spec, str):
        cls: type[Component] = get_plugins().registry(kind).get(spec)
        return cls
    base = KIND_BASES[kind]
    if isinstance(spec, base) or (isinstance(spec, type) and issubclass(spec, base)):
        return spec
    raise ConfigError(f"expected a {kind} name or a {base.__name__}, got {spec!r}")


def _build(spec: type[Component] | Component, params: dict[str, Any]) -> Any:
    if isinstance(spec, type):
        return spec.from_params(params)
    if not params:
        return spec
    return type(spec).from_params({**spec.get_params(), **params})


def resolve_components(
    model: str | Model | type[Model],
    policy: str | SignalPolicy | type[SignalPolicy] = DEFAULT_POLICY,
    metrics: Sequence[str | Metric | type[Metric]] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[Model, SignalPolicy, dict[str, Metric]]:
    """Build the model, policy and metrics from names or objects, applying ``params``."""
    targets: dict[str, type[Component] | Component] = {
        "model": _component("model", model),
        "policy": _component("policy", policy),
    }
    metric_specs: Iterable[Any] = get_plugins().metrics.names() if metrics is None else metrics
    metric_labels: list[str] = []
    for spec in metric_specs:
        resolved = _component("metric", spec)
        label = type_of(resolved).name
        if label in targets:
            raise ConfigError(f"metric {label!r} is given twice or clashes with 'model'/'policy'")
        targets[label] = resolved
        metric_labels.append(label)
    routed = _route_params(params, targets)
    built = {label: _build(spec, routed[label]) for label, spec in targets.items()}
    return built["model"], built["policy"], {label: built[label] for label in metric_labels}
