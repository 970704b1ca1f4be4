"""Plugin discovery and the component registries.

Plugins are loaded once per process from the entry-point group ``pokewatch``. A plugin that
fails to import, whose hook raises, or that registers something invalid is skipped with one
warning line (an error with ``POKEWATCH_STRICT_PLUGINS=1``); ``POKEWATCH_DISABLE_PLUGINS=a,b``
blocks plugins by entry-point name. Two plugins registering the same component name is an
error naming both, raised when that name is used.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from pokewatch_core import hookspecs
from pokewatch_core.components import KIND_BASES, Component, Metric, Model, SignalPolicy
from pokewatch_core.errors import ConfigError, PluginError

log = logging.getLogger("pokewatch")

C = TypeVar("C", bound=Component)

HOOKS: dict[str, str] = {  # hook -> the kind of component it registers
    "pokewatch_register_models": "model",
    "pokewatch_register_metrics": "metric",
    "pokewatch_register_signal_policies": "policy",
}


@dataclass
class PluginInfo:
    """What is known of one plugin: where it comes from and what it did."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    error: str | None = None


@dataclass(frozen=True)
class Registration:
    """One component class and the plugin that registered it."""

    cls: type[Component]
    plugin: str


class Registry(Generic[C]):
    """The components of one kind, by name."""

    def __init__(self, kind: str, base: type[C]) -> None:
        self.kind = kind
        self.base = base
        self._items: dict[str, list[Registration]] = {}

    def add(self, cls: type[C], plugin: str) -> None:
        """Record ``cls`` under its name (a second plugin with the same name is a conflict)."""
        self._items.setdefault(cls.name, []).append(Registration(cls, plugin))

    def names(self) -> list[str]:
        """All registered names, in registration order."""
        return list(self._items)

    def registrations(self, name: str) -> list[Registration]:
        """Every registration of ``name`` (more than one means a conflict)."""
        return list(self._items.get(name, []))

    def conflicts(self) -> dict[str, list[str]]:
        """Names registered by more than one plugin, with those plugins."""
        return {
            n: sorted(r.plugin for r in regs) for n, regs in self._items.items() if len(regs) > 1
        }

    def registration(self, name: str) -> Registration:
        """The registration of ``name``; ``ConfigError`` if unknown, ``PluginError`` if
        two plugins claim it."""
        regs = self._items.get(name)
        if not regs:
            valid = ", ".join(sorted(self._items)) or "none installed"
            raise ConfigError(f"unknown {self.kind} '{name}' (valid: {valid})")
        if len(regs) > 1:
            plugins = " and ".join(sorted(f"'{r.plugin}'" for r in regs))
            raise PluginError(
                f"{self.kind} name '{name}' is registered by two plugins: {plugins}; "
                "uninstall one or block it with POKEWATCH_DISABLE_PLUGINS"
            )
        return regs[0]

    def get(self, name: str) -> type[C]:
        """The class registered as ``name``."""
        cls = self.registration(name).cls
        assert issubclass(cls, self.base)
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


@dataclass
class Plugins:
    """The loaded plugins and the three registries they filled."""

    models: Registry[Model]
    metrics: Registry[Metric]
    policies: Registry[SignalPolicy]
    plugins: dict[str, PluginInfo]
    # installed plugins POKEWATCH_DISABLE_PLUGINS kept out, and names it gives that no plugin has
    blocked: list[str] = field(default_factory=list)
    unknown_blocked: list[str] = field(default_factory=list)

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (``model``, ``metric`` or ``policy``)."""
        registries: dict[str, Registry[Any]] = {
            self.models.kind: self.models,
            self.metrics.kind: self.metrics,
            self.policies.kind: self.policies,
        }
        return registries[kind]


def _strict() -> bool:
    return os.environ.get("POKEWATCH_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes"}


def _blocked() -> set[str]:
    raw = os.environ.get("POKEWATCH_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fail(info: PluginInfo, what: str, exc: BaseException | str) -> None:
    message = exc if isinstance(exc, str) else _one_line(exc)
    info.error = f"{what}: {message}" if not info.error else f"{info.error}; {what}: {message}"
    origin = f" ({info.distribution} {info.version})" if info.distribution else ""
    line = f"plugin '{info.name}'{origin} {what}: {message}"
    if _strict():
        raise PluginError(line + " (POKEWATCH_STRICT_PLUGINS is set)")
    log.warning("warning: %s; skipped", line)


def _validate(cls: Any, kind: str, base: type[Component]) -> None:
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise TypeError(f"{cls!r} is not a subclass of pokewatch_core.{base.__name__}")
    if not isinstance(cls.name, str) or not cls.name.strip():
        raise TypeError(f"{kind} class {cls.__qualname__} has no 'name'")
    cls.param_specs()  # raises TypeError on unusable parameters


def _load(extra: list[tuple[str, object]]) -> Plugins:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    blocked = _blocked()

    kept_out: list[str] = []
    for ep in metadata.entry_points(group=hookspecs.PROJECT_NAME):
        if ep.name in blocked:
            kept_out.append(ep.name)
            continue
        if ep.name in infos:
            continue
        dist = getattr(ep, "dist", None)
        info = PluginInfo(
            name=ep.name,
            distribution=dist.name if dist else None,
            version=dist.version if dist else None,
            module=ep.value,
        )
        infos[ep.name] = info
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:
            _fail(info, "failed to load", exc)
    for name, plugin in extra:
        if name in blocked:
            kept_out.append(name)
            continue
        infos[name] = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            _fail(infos[name], "failed to load", exc)

    models: Registry[Model] = Registry("model", Model)
    metrics: Registry[Metric] = Registry("metric", Metric)
    policies: Registry[SignalPolicy] = Registry("policy", SignalPolicy)
    registries: dict[str, Registry[Any]] = {r.kind: r for r in (models, metrics, policies)}

    # Call each plugin's hooks on their own, and keep a plugin's components only if all of its
    # hooks succeed: one broken plugin spoils nothing else, and is never half registered.
    pending: dict[str, list[tuple[str, type[Component]]]] = {}
    for hook_name, kind in HOOKS.items():
        base = KIND_BASES[kind]
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = infos[impl.plugin_name]
            if info.error:
                continue
            info.hooks.append(hook_name)
            collected: list[Any] = []
            try:
                impl.function(register=collected.append)
                for cls in collected:
                    _validate(cls, kind, base)
            except Exception as exc:
                _fail(info, f"hook {hook_name} failed", exc)
                continue
            pending.setdefault(info.name, []).extend((kind, cls) for cls in collected)
    for plugin_name, components in pending.items():
        info = infos[plugin_name]
        if info.error:
            continue
        for kind, cls in components:
            registries[kind].add(cls, plugin_name)
            info.components.append((kind, cls.name))
    unknown = sorted(blocked - set(kept_out))
    if unknown:
        log.warning(
            "warning: POKEWATCH_DISABLE_PLUGINS names %s, which no installed plugin is called "
            "(it takes plugin names, as `pokewatch plugins` lists them, comma-separated)",
            ", ".join(repr(n) for n in unknown),
        )
    return Plugins(models, metrics, policies, infos, sorted(set(kept_out)), unknown)


def _distribution_of(cls: type) -> str | None:
    """``dist version`` of the installed distribution that holds ``cls``'s module, if any."""
    top = cls.__module__.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
    except Exception:  # a broken installed distribution must not hide the real error
        return None
    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def describe(kind: str, component: Component | type[Component]) -> str:
    """``model 'x' (pokewatch-x 0.3.1)``: the component, and the distribution and version of
    the plugin that provides it (its module when it comes from no distribution)."""
    cls = component if isinstance(component, type) else type(component)
    origin: str | None = None
    plugins = _loaded
    if plugins is not None and cls.name in plugins.registry(kind):
        regs = [r for r in plugins.registry(kind).registrations(cls.name) if r.cls is cls]
        info = plugins.plugins.get(regs[0].plugin) if regs else None
        if info is not None and info.distribution:
            origin = f"{info.distribution} {info.version}"
    origin = origin or _distribution_of(cls) or f"module {cls.__module__}"
    return f"{kind} '{cls.name}' ({origin})"


_lock = threading.Lock()
_loaded: Plugins | None = None
_extra: list[tuple[str, object]] = []


def get_plugins() -> Plugins:
    """The plugins of this process, loaded on first use."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load(list(_extra))
        return _loaded


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Add an in-process plugin (an object or module with hook implementations).

    Useful in notebooks and tests; installed plugins are found through entry points instead.
    """
    global _loaded
    plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
    with _lock:
        _extra.append((plugin_name, plugin))
        _loaded = None


def unregister_plugin(name: str) -> None:
    """Remove an in-process plugin added with ``register_plugin``."""
    global _loaded
    with _lock:
        _extra[:] = [(n, p) for n, p in _extra if n != name]
        _loaded = None


def reload_plugins() -> Plugins:
    """Forget the loaded plugins and discover them again (after installing one)."""
    global _loaded
    with _lock:
        _loaded = None
    return get_plugins()
