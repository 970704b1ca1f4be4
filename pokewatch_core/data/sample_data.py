"""Seeded generator of realistic synthetic price panels for the ``sv2a`` (Pokémon Card 151) set.

Model, per card (all vectorised over cards, one loop over days for the spike decay):

* a price level drawn from the card's rarity tier: commons around $0.10, uncommons $0.20,
  rares $0.60, double rares $2, art rares $12, super rares $25, ultra rares $40 and special
  art rares around $120 (up to several hundred dollars), log-normally spread;
* a geometric random walk with a small per-card drift and a tier-dependent daily volatility;
* occasional spikes (about one per 100 card-days) of +20% to +80% that decay back over days;
* missing days (about 3% of card-days have no row) and a few unknown prices (NaN, 0.5%).

The card list is the set's: numbers 1-210, and after them the four Master Ball Pattern variants.
The cards the real snapshots hold (``REAL_CARDS``, as in ``tests/data/raw``: the secret rares
200-205 and the variants) carry their real ids, names, numbers, rarities and categories, and
their prices start near their real price; the other names are the Pokédex's.

The embedded sample (``pokewatch_core/data/sample/sv2a_sample.parquet``) is this generator with its
defaults: all 214 cards of that list for 200 days ending 2025-11-22, seed 151. Rebuild it with
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
SET_LIST = 210  # numbers 1-210 of the set list
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
_EX = {3, 6, 9, 24, 40, 65, 76, 124, 131, 132, 143, 145, 151}  # Pokédex numbers with ex


@dataclass(frozen=True)
class RealCard:
    """A card as the real snapshots list it, with its market price on 2025-11-23."""

    card_id: str
    card_number: str
    card_name: str
    rarity: str
    category: str
    price: float


# The cards of tests/data/raw (pokemonpricetracker, 2025-11-23): tests/test_sample_data.py
# checks this list against those files
REAL_CARDS: tuple[RealCard, ...] = (
    RealCard("sv2a_151_venusaur_ex___200_165", "200/165", "Venusaur ex - 200/165",
             "Special Art Rare", "grail", 79.11),
    RealCard("sv2a_151_charizard_ex___201_165", "201/165", "Charizard ex - 201/165",
             "Special Art Rare", "grail", 246.34),
    RealCard("sv2a_151_blastoise_ex___202_165", "202/165", "Blastoise ex - 202/165",
             "Special Art Rare", "grail", 86.38),
    RealCard("sv2a_151_alakazam_ex___203_165", "203/165", "Alakazam ex - 203/165",
             "Special Art Rare", "chase", 50.43),
    RealCard("sv2a_151_zapdos_ex___204_165", "204/165", "Zapdos ex - 204/165",
             "Special Art Rare", "grail", 74.53),
    RealCard("sv2a_151_mew_ex___205_165", "205/165", "Mew ex - 205/165",
             "Special Art Rare", "grail", 137.43),
    RealCard("sv2a_151_magikarp_master_ball_pattern", "129/165",
             "Magikarp (Master Ball Pattern)", "Common", "chase", 36.62),
    RealCard("sv2a_151_gyarados_master_ball_pattern", "130/165",
             "Gyarados (Master Ball Pattern)", "Rare", "chase", 32.52),
    RealCard("sv2a_151_dragonite_master_ball_pattern", "149/165",
             "Dragonite (Master Ball Pattern)", "Rare", "chase", 50.52),
    RealCard("sv2a_151_mewtwo_master_ball_pattern", "150/165",
             "Mewtwo (Master Ball Pattern)", "Rare", "chase", 35.90),
)  # fmt: skip
_REAL_NUMBERED = {int(c.card_number.split("/")[0]): c for c in REAL_CARDS if "___" in c.card_id}
_VARIANTS = tuple(c for c in REAL_CARDS if "___" not in c.card_id)
DEFAULT_CARDS = SET_LIST + len(_VARIANTS)
# a variant is printed at its base card's rarity
_BASE_RARITY = {int(c.card_number.split("/")[0]): c.rarity for c in _VARIANTS}

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
    category: np.ndarray
    price: np.ndarray  # a real card's market price, NaN for the others


def _slug(text: str) -> str:
    text = text.replace("♀", "_f").replace("♂", "_m")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _set_rarity(number: int, rng_value: float) -> str:
    if number > 205:
        return "Ultra Rare"
    if number >= 200:
        return "Special Art Rare"
    if number > 181:
        return "Super Rare"
    if number > SET_CARDS:
        return "Art Rare"
    if (number % 151 or 151) in _EX and number <= 151:
        return "Double Rare"
    return "Common" if rng_value < 0.55 else ("Uncommon" if rng_value < 0.85 else "Rare")


def _set_cards(n: int, rng: np.random.Generator) -> _Cards:
    """The first ``n`` cards of the set list (numbers 1-210, then the Master Ball Pattern
    variants): the real cards as the snapshots list them, the others named from the Pokédex."""
    draws = rng.random(n)
    rows: list[tuple[str, str, str, str, str, float]] = []
    for i in range(n):
        number = i + 1
        real = _REAL_NUMBERED.get(number) if number <= SET_LIST else _VARIANTS[i - SET_LIST]
        if real is not None:
            rows.append(
                (real.card_id, real.card_name, real.card_number, real.rarity, real.category,
                 real.price)
            )  # fmt: skip
            continue
        rarity = _BASE_RARITY.get(number) or _set_rarity(number, float(draws[i]))
        species = _GEN1[(number - 1) % 151] if number <= 151 else _GEN1[(number * 7) % 151]
        if number > 151 and number <= SET_CARDS:
            name = f"Trainer {number}"
        elif rarity in ("Double Rare", "Super Rare", "Special Art Rare", "Ultra Rare"):
            name = f"{species} ex"
        else:
            name = species
        label = f"{number:03d}/{SET_CARDS}"
        card_id = f"sv2a_151_{_slug(name)}___{number:03d}_{SET_CARDS}"
        rows.append((card_id, f"{name} - {label}", label, rarity, _CATEGORY[rarity], np.nan))
    ids, names, numbers, rarities, categories, prices = zip(*rows, strict=True)
    return _Cards(
        np.array(ids), np.array(names), np.array(numbers), np.array(rarities),
        np.array(categories), np.array(prices, dtype=np.float64),
    )  # fmt: skip


def _synthetic_cards(n: int, rng: np.random.Generator) -> _Cards:
    """Cards beyond the real set list, rarity drawn by the tier weights."""
    tiers = list(TIERS)
    weights = np.array([TIERS[t][3] for t in tiers])
    rarity = np.array(tiers)[rng.choice(len(tiers), size=n, p=weights / weights.sum())]
    index = np.arange(1, n + 1)
    number = np.char.add(np.char.zfill(index.astype(str), 5), "/SYN")
    card_id = np.char.add("sv2a_synthetic_", np.char.zfill(index.astype(str), 5))
    name = np.char.add("Synthetic card ", index.astype(str))
    category = np.array([_CATEGORY[r] for r in rarity.tolist()])
    return _Cards(card_id, name, number, rarity, category, np.full(n, np.nan))


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
    real = ~np.isnan(info.price)  # a real card starts near its real price
    level[real] = np.log(info.price[real]) + 0.1 * (level[real] - np.log(median[real]))
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
            "card_name": _per_row(info.card_name, card_idx),
            "card_number": _per_row(info.card_number, card_idx),
            "rarity": pd.Categorical.from_codes(tier[card_idx], categories=pd.Index(tier_names)),
            "category": _per_row(info.category, card_idx),
        }
    )
    constant = np.zeros(len(frame), np.int8)
    frame["set_id"] = pd.Categorical.from_codes(constant, categories=pd.Index([SET_ID]))
    frame["source"] = pd.Categorical.from_codes(constant, categories=pd.Index(["synthetic"]))
    return frame


def _per_row(per_card: np.ndarray, card_idx: np.ndarray) -> pd.Categorical:
    """A per-card value on every row, as a categorical (a few codes, not millions of strings)."""
    values = pd.Categorical(per_card)
    return pd.Categorical.from_codes(values.codes[card_idx], categories=values.categories)


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
