"""What is installed: plugins, their components and failures, as data for the CLI."""

from __future__ import annotations

from typing import Any

from pokewatch_core.components import KIND_BASES, Component, Metric
from pokewatch_core.plugins.registry import Plugins, get_plugins

CORE_DISTRIBUTION = "pokewatch"
KINDS = tuple(KIND_BASES)


def component_info(cls: type[Component], plugin: str | None = None) -> dict[str, Any]:
    """Kind, name, description, parameters (name, type, default) and plugin of a component."""
    specs = cls.param_specs()
    info: dict[str, Any] = {
        "kind": cls.kind,
        "name": cls.name,
        "description": cls.description,
        "parameters": [
            {"name": s.name, "type": s.type_name, "default": s.default} for s in specs.values()
        ],
        "plugin": plugin,
    }
    if issubclass(cls, Metric):
        info["unit"] = cls.unit
        info["greater_is_better"] = cls.greater_is_better
    return info


def components(kind: str, plugins: Plugins | None = None) -> list[dict[str, Any]]:
    """Every usable component of ``kind``; names claimed by two plugins are listed once
    with ``conflict`` naming both."""
    plugins = plugins or get_plugins()
    registry = plugins.registry(kind)
    conflicts = registry.conflicts()
    out = []
    for name in registry:
        if name in conflicts:
            out.append({"kind": kind, "name": name, "conflict": conflicts[name]})
        else:
            reg = registry.registration(name)
            out.append(component_info(reg.cls, reg.plugin))
    return out


def plugins_report(
    include_defaults: bool = False, plugins: Plugins | None = None
) -> dict[str, Any]:
    """Plugins with their distribution, hooks and components; failures; name conflicts."""
    plugins = plugins or get_plugins()
    listed = []
    for info in plugins.plugins.values():
        if info.distribution == CORE_DISTRIBUTION and not include_defaults:
            continue
        entry: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "module": info.module,
            "hooks": list(info.hooks),
            "components": [],
            "error": info.error,
        }
        if not info.error:
            for kind, name in info.components:
                registry = plugins.registry(kind)
                regs = [r for r in registry.registrations(name) if r.plugin == info.name]
                entry["components"].extend(component_info(r.cls, info.name) for r in regs)
        listed.append(entry)
    conflicts = [
        {"kind": kind, "name": name, "plugins": owners}
        for kind in KINDS
        for name, owners in plugins.registry(kind).conflicts().items()
    ]
    return {
        "plugins": [p for p in listed if not p["error"]],
        "failed": [p for p in listed if p["error"]],
        "conflicts": conflicts,
        "blocked": list(plugins.blocked),  # by POKEWATCH_DISABLE_PLUGINS
    }
