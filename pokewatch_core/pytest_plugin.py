"""pytest plugin (entry point ``pytest11``): fixtures for testing PokeWatch plugins.

Loaded in every pytest session where pokewatch is installed, so it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd


@pytest.fixture
def pokewatch_panel() -> pd.DataFrame:
    """A small validated price table with gaps and NaN prices, rows shuffled."""
    from pokewatch_core.testing import example_panel

    return example_panel()
