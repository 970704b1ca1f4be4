"""Component parameters: introspection, string conversion, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from pokewatch_core import ConfigError, Model


@dataclass
class Demo(Model):
    name: ClassVar[str] = "demo"
    description: ClassVar[str] = "test model"
    window: int = 3
    alpha: float = 0.5
    smooth: bool = False
    label: str = "x"
    cap: float | None = None
    mode: Literal["fast", "slow"] = "fast"


def test_specs_come_from_the_annotated_constructor():
    specs = Demo.param_specs()
    assert list(specs) == ["window", "alpha", "smooth", "label", "cap", "mode"]
    assert specs["window"].default == 3


def test_strings_are_converted_by_annotation():
    demo = Demo.from_params(
        {
            "window": "7",
            "alpha": "0.25",
            "smooth": "yes",
            "label": "y",
            "cap": "none",
            "mode": "slow",
        }
    )
    assert demo.get_params() == {
        "window": 7,
        "alpha": 0.25,
        "smooth": True,
        "label": "y",
        "cap": None,
        "mode": "slow",
    }
    assert Demo.from_params({"cap": "2.5"}).cap == 2.5


def test_params_round_trip_through_strings():
    demo = Demo(window=9, alpha=0.125, smooth=True, cap=1.5, mode="slow")
    again = Demo.from_params({k: str(v) for k, v in demo.get_params().items()})
    assert again == demo


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"window": "2.5"}, "expects int"),
        ({"smooth": "maybe"}, "expects bool"),
        ({"mode": "medium"}, "expects 'fast' or 'slow'"),
        ({"nope": 1}, "has no parameter 'nope' (valid: alpha, cap, label, mode, smooth, window)"),
    ],
)
def test_bad_values_are_config_errors(params, needle):
    with pytest.raises(ConfigError) as info:
        Demo.from_params(params)
    assert needle in str(info.value)


def test_parameter_without_default_is_rejected():
    class NoDefault(Model):
        name = "nodefault"

        def __init__(self, window: int) -> None:
            self.window = window

    with pytest.raises(TypeError, match="has no default"):
        NoDefault.param_specs()
