"""Seeded generator of realistic synthetic price panels for the ``sv2a`` (Pokémon Card 151) set.

Model, per card (all vectorised over cards, one loop over days for the spike decay):

* a price level drawn from the card's rarity tier: commons around $0.10, uncommons $0.20,
  rares $0.60, double rares $2, art rares $12, super rares $25, ultra rares $40 and special
  art rares around $120 (up to several hundred dollars), log-normally spread;
* a geometric random walk with a small per-card drift and a tier-dependent daily volatility;
* occasional spikes (about one per 100 card-days) of +20% to +80% that decay back over days;
* missing days (about 3% of card-days have no row) and a few unknown prices (NaN, 0.5%).

The embedded sample (``pokewatch_core/data/sample/sv2a_sample.parquet``) is this generator with its
defaults: all 210 cards of the set for 200 days ending 2025-11-22, seed 151. Rebuild it with
``python scripts/make_sample_data.py`` or ``pokewatch sample-data --output PATH``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pokewatch_core.columns import DATE, ID, PRICE

SET_ID = "sv2a"
SET_CARDS = 165  # numbered cards; 166-210 are secret rares
SAMPLE_FILE = "sv2a_sample.parquet"
DEFAULT_CARDS = 210
DEFAULT_DAYS = 200
DEFAULT_END = "2025-11-22"
DEFAULT_SEED = 151

_GEN1 = (
    "Bulbasaur Ivysaur Venusaur Charmander Charmeleon Charizard Squirtle Wartortle Blastoise "
    "Caterpie Metapod Butterfree Weedle Kakuna Beedrill Pidgey Pidgeotto Pidgeot Rattata "
    "Raticate Spearow Fearow Ekans Arbok Pikachu Raichu Sandshrew Sandslash Nidoran♀ Nidorina "
    "Nidoqueen Nidoran♂ Nidorino Nidoking Clefairy Clefable Vulpix Ninetales Jigglypuff "
    "Wigglytuff Zubat Golbat Oddish Gloom Vileplume Paras Parasect Venonat Venomoth Diglett "
    "Dugtrio Meowth Persian Psyduck Golduck Mankey Primeape Growlithe Arcanine Poliwag "
    "Poliwhirl Poliwrath Abra Kadabra Alakazam Machop Machoke Machamp Bellsprout Weepinbell "
    "Victreebel Tentacool Tentacruel Geodude Graveler Golem Ponyta Rapidash Slowpoke Slowbro "
    "Magnemite Magneton Farfetch'd Doduo Dodrio Seel Dewgong Grimer Muk Shellder Cloyster "
    "Gastly Haunter Gengar Onix Drowzee Hypno Krabby Kingler Voltorb Electrode Exeggcute "
    "Exeggutor Cubone Marowak Hitmonlee Hitmonchan Lickitung Koffing Weezing Rhyhorn Rhydon "
    "Chansey Tangela Kangaskhan Horsea Seadra Goldeen Seaking Staryu Starmie Mr.Mime Scyther "
    "Jynx Electabuzz Magmar Pinsir Tauros Magikarp Gyarados Lapras Ditto Eevee Vaporeon "
    "Jolteon Flareon Porygon Omanyte Omastar Kabuto Kabutops Aerodactyl Snorlax Articuno "
    "Zapdos Moltres Dratini Dragonair Dragonite Mewtwo Mew"
).split()
_EX = {3, 6, 9, 24, 40, 65, 76, 124, 131, 132, 143, 145, 150, 151}  # Pokédex numbers with ex

# tier: (median price $, log spread, daily volatility, weight among synthetic cards)
TIERS: dict[str, tuple[float, float, float, float]] = {
    "Common": (0.10, 0.35, 0.030, 0.35),
    "Uncommon": (0.20, 0.35, 0.028, 0.25),
    "Rare": (0.60, 0.45, 0.025, 0.12),
    "Double Rare": (2.00, 0.60, 0.022, 0.08),
    "Art Rare": (12.0, 0.70, 0.020, 0.09),
    "Super Rare": (25.0, 0.55, 0.018, 0.06),
    "Ultra Rare": (40.0, 0.40, 0.016, 0.02),
    "Special Art Rare": (120.0, 0.55, 0.015, 0.03),
}
_CATEGORY = {
    "Common": "bulk",
    "Uncommon": "bulk",
    "Rare": "playable",
    "Double Rare": "playable",
    "Art Rare": "chase",
    "Super Rare": "chase",
    "Ultra Rare": "chase",
    "Special Art Rare": "grail",
}


@dataclass(frozen=True)
class _Cards:
    card_id: np.ndarray
    card_name: np.ndarray
    card_number: np.ndarray
    rarity: np.ndarray


def _slug(text: str) -> str:
    text = text.replace("♀", "_f").replace("♂", "_m")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _set_rarity(number: int, rng_value: float) -> str:
    if number > 205:
        return "Ultra Rare"
    if number > 200:
        return "Special Art Rare"
    if number > 181:
        return "Super Rare"
    if number > SET_CARDS:
        return "Art Rare"
    if (number % 151 or 151) in _EX and number <= 151:
        return "Double Rare"
    return "Common" if rng_value < 0.55 else ("Uncommon" if rng_value < 0.85 else "Rare")


def _set_cards(n: int, rng: np.random.Generator) -> _Cards:
    """The first ``n`` cards of the real set list (numbers 1-210), names from the Pokédex."""
    draws = rng.random(n)
    ids, names, numbers, rarities = [], [], [], []
    for i in range(n):
        number = i + 1
        rarity = _set_rarity(number, float(draws[i]))
        species = _GEN1[(number - 1) % 151] if number <= 151 else _GEN1[(number * 7) % 151]
        if number > 151 and number <= SET_CARDS:
            name = f"Trainer {number}"
        elif rarity in ("Double Rare", "Super Rare", "Special Art Rare", "Ultra Rare"):
            name = f"{species} ex"
        else:
            name = species
        label = f"{number:03d}/{SET_CARDS}"
        ids.append(f"sv2a_151_{_slug(name)}___{number:03d}_{SET_CARDS}")
        names.append(f"{name} - {label}")
        numbers.append(label)
        rarities.append(rarity)
    return _Cards(np.array(ids), np.array(names), np.array(numbers), np.array(rarities))


def _synthetic_cards(n: int, rng: np.random.Generator) -> _Cards:
    """Cards beyond the real set list, rarity drawn by the tier weights."""
    tiers = list(TIERS)
    weights = np.array([TIERS[t][3] for t in tiers])
    rarity = np.array(tiers)[rng.choice(len(tiers), size=n, p=weights / weights.sum())]
    index = np.arange(1, n + 1)
    number = np.char.add(np.char.zfill(index.astype(str), 5), "/SYN")
    card_id = np.char.add("sv2a_synthetic_", np.char.zfill(index.astype(str), 5))
    name = np.char.add("Synthetic card ", index.astype(str))
    return _Cards(card_id, name, number, rarity)


def _cards(n: int, rng: np.random.Generator) -> _Cards:
    real = _set_cards(min(n, DEFAULT_CARDS), rng)
    if n <= DEFAULT_CARDS:
        return real
    extra = _synthetic_cards(n - DEFAULT_CARDS, rng)
    return _Cards(
        *(np.concatenate([getattr(real, f), getattr(extra, f)]) for f in _Cards.__annotations__)
    )


def generate_prices(
    cards: int = DEFAULT_CARDS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    end: str = DEFAULT_END,
) -> pd.DataFrame:
    """A long price table (one row per card per observed day), sorted by card and date.

    Deterministic for a seed. Columns: ``card_id, date, market_price, card_name,
    card_number, rarity, category, set_id, source``.
    """
    if cards < 1 or days < 1:
        raise ValueError("cards and days must be at least 1")
    rng = np.random.default_rng(seed)
    info = _cards(cards, rng)
    tier_names = list(TIERS)
    tier = pd.Categorical(info.rarity, categories=tier_names).codes
    median = np.array([TIERS[t][0] for t in tier_names])[tier]
    spread = np.array([TIERS[t][1] for t in tier_names])[tier]
    vol = np.array([TIERS[t][2] for t in tier_names])[tier]

    level = np.log(median) + spread * rng.standard_normal(cards)
    drift = rng.normal(0.0003, 0.0015, cards)  # per day, in log price
    steps = rng.standard_normal((cards, days), dtype=np.float32) * vol[:, None].astype(np.float32)
    steps += drift[:, None].astype(np.float32)
    steps[:, 0] = 0.0
    log_price = np.cumsum(steps, axis=1, dtype=np.float64) + level[:, None]

    # Spikes: a jump that decays by a card-specific factor each day.
    jumps = (rng.random((cards, days)) < 0.01) * rng.uniform(0.2, 0.8, (cards, days))
    decay = rng.uniform(0.6, 0.9, cards)
    effect = np.zeros(cards)
    for t in range(days):
        effect = effect * decay + jumps[:, t]
        log_price[:, t] += np.log1p(effect)

    price = np.maximum(np.round(np.exp(log_price), 2), 0.01)
    observed = rng.random((cards, days)) >= 0.03
    observed[:, 0] = True  # every card has a first listing
    price[rng.random((cards, days)) < 0.005] = np.nan

    card_idx, day_idx = np.nonzero(observed)
    dates = pd.date_range(end=pd.Timestamp(end), periods=days, freq="D")
    frame = pd.DataFrame(
        {
            ID: pd.Categorical.from_codes(card_idx, categories=pd.Index(info.card_id)),
            DATE: dates.values[day_idx],
            PRICE: price[card_idx, day_idx],
            "card_name": pd.Categorical.from_codes(card_idx, categories=pd.Index(info.card_name)),
            "card_number": pd.Categorical.from_codes(
                card_idx, categories=pd.Index(info.card_number)
            ),
            "rarity": pd.Categorical(info.rarity[card_idx], categories=tier_names),
        }
    )
    frame["category"] = frame["rarity"].map(_CATEGORY).astype("category")
    constant = np.zeros(len(frame), np.int8)
    frame["set_id"] = pd.Categorical.from_codes(constant, categories=pd.Index([SET_ID]))
    frame["source"] = pd.Categorical.from_codes(constant, categories=pd.Index(["synthetic"]))
    return frame


# Peak bytes per card-day while generating: float32 steps, float64 log prices, prices and
# random draws (several live at once), the observed mask, then the long frame's columns.
BYTES_PER_CELL = 80


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def check_size(cards: int, days: int) -> None:
    """Refuse (``ConfigError``) a panel whose estimated memory exceeds what is available."""
    from pokewatch_core.errors import ConfigError

    needed = cards * days * BYTES_PER_CELL
    available = available_memory()
    if available is not None and needed > available:
        raise ConfigError(
            f"{cards:,} cards x {days:,} days: estimated memory {needed / 2**30:,.1f} GiB, "
            f"more than the {available / 2**30:,.1f} GiB available; ask for fewer cards or days"
        )


def write_sample(output: str | Path, **kwargs: int | str) -> pd.DataFrame:
    """Generate a panel and write it to ``output`` (parquet or CSV by suffix), atomically."""
    from pokewatch_core.files import atomic_write_table

    frame = generate_prices(**kwargs)  # type: ignore[arg-type]
    atomic_write_table(frame, Path(output))
    return frame


def embedded_sample_path() -> Path:
    """Path of the sample data set shipped inside the package."""
    return Path(str(resources.files("pokewatch_core.data") / "sample" / SAMPLE_FILE))
