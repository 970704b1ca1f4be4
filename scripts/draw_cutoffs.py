"""Draw docs/images/backtest-cutoffs.png: the cutoffs of ``pokewatch train --horizon 7
--windows 4 --step 7`` over one card of the embedded sample, with each window's training rows
(expanding, the default, and sliding with ``--input-size 28``) and forecast days.

Usage: uv run python scripts/draw_cutoffs.py [--output PATH]

The cutoffs are the ones PokeWatch resolves on the sample's dates
(``pokewatch_core.evaluation.cutoffs.resolve_cutoffs``), not drawn by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

from pokewatch_core import embedded_sample_path
from pokewatch_core.evaluation.cutoffs import BacktestOptions, distinct_days, resolve_cutoffs

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "images" / "backtest-cutoffs.png"
CARD = "sv2a_151_golbat_ex___200_165"  # a card with no row on two of the forecast days
HORIZON, WINDOWS, STEP, INPUT_SIZE = 7, 4, 7, 28
SHOWN_FROM = pd.Timestamp("2025-09-01")
DAY = pd.Timedelta(days=1)
TRAIN, FORECAST, MISSING = "#4c72b0", "#dd8452", "#c44e52"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    prices = pd.read_parquet(embedded_sample_path())
    options = BacktestOptions(HORIZON, WINDOWS, STEP)
    cutoffs = resolve_cutoffs(options, distinct_days(prices["date"]), None).dates()
    first, last = prices["date"].min(), prices["date"].max()
    card = prices[prices["card_id"] == CARD].set_index("date")["market_price"]

    fig, (top, expanding, sliding) = plt.subplots(
        3, 1, figsize=(11, 7.4), sharex=True, height_ratios=[2.2, 1.6, 1.6]
    )
    shown = card[card.index >= SHOWN_FROM]
    top.plot(shown.index, shown.to_numpy(), color="0.25", lw=1.2, marker=".", ms=3)
    missing = [
        day
        for cutoff in cutoffs
        for day in pd.date_range(cutoff + DAY, cutoff + HORIZON * DAY)
        if day not in card.index
    ]
    for i, cutoff in enumerate(cutoffs, start=1):
        top.axvspan(cutoff + 0.5 * DAY, cutoff + (HORIZON + 0.5) * DAY, color=FORECAST, alpha=0.18)
        top.axvline(cutoff, color="black", lw=1, ls="--")
        top.annotate(
            f"cutoff {i}\n{cutoff:%b %d}",
            (cutoff, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for day in missing:
        top.axvline(day, color=MISSING, lw=2, alpha=0.8)
    top.set_ylabel("market price")
    top.set_title(
        f"pokewatch train --horizon {HORIZON} --windows {WINDOWS} --step {STEP}: "
        f"card {CARD} of the embedded sample (daily, {first:%Y-%m-%d}..{last:%Y-%m-%d})",
        fontsize=9.5,
        pad=30,
    )
    top.legend(
        handles=[
            Patch(color=FORECAST, alpha=0.35, label=f"forecast days: cutoff + 1..{HORIZON}"),
            Patch(color=MISSING, label="no row on that day: no forecast"),
        ],
        loc="upper left",
        fontsize=8,
        framealpha=0.9,
    )

    for ax, sized in ((expanding, None), (sliding, INPUT_SIZE)):
        for row, cutoff in enumerate(cutoffs):
            y = WINDOWS - row
            start = first if sized is None else cutoff - (sized - 1) * DAY
            left = max(start, SHOWN_FROM - 3 * DAY)
            ax.barh(y, cutoff - left + 0.5 * DAY, left=left, height=0.55, color=TRAIN)
            ax.barh(y, HORIZON * DAY, left=cutoff + 0.5 * DAY, height=0.55, color=FORECAST)
            ax.plot([cutoff, cutoff], [y - 0.4, y + 0.4], color="black", lw=1.5)
            if start < left:
                ax.annotate(
                    f"◀ from {start:%b %d}",
                    (left, y),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7.5,
                    color="white",
                )
            ax.annotate(
                f"h1..h{HORIZON}",
                (cutoff + (HORIZON / 2 + 0.5) * DAY, y),
                ha="center",
                va="center",
                fontsize=7,
                color="black",
            )
        ax.set_yticks(range(1, WINDOWS + 1), [f"window {WINDOWS - i}" for i in range(WINDOWS)])
        ax.set_ylim(0.4, WINDOWS + 0.6)
    expanding.set_title(
        "expanding (default): fit and predict on every row up to the cutoff", fontsize=9, loc="left"
    )
    sliding.set_title(
        f"sliding, --input-size {INPUT_SIZE}: only the {INPUT_SIZE} days up to the cutoff",
        fontsize=9,
        loc="left",
    )
    step_y = WINDOWS - (WINDOWS - 2) + 0.42
    expanding.annotate(
        "",
        (cutoffs[-1], step_y),
        xytext=(cutoffs[-2], step_y),
        arrowprops={"arrowstyle": "<->", "lw": 0.8},
    )
    expanding.annotate(
        f"--step {STEP}",
        (cutoffs[-2] + STEP / 2 * DAY, step_y),
        xytext=(0, 2),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=7.5,
    )
    sliding.annotate(
        f"last cutoff = last date ({last:%b %d}) − {HORIZON} days",
        (last + DAY, WINDOWS),
        ha="right",
        va="center",
        fontsize=7.5,
    )
    sliding.legend(
        handles=[
            Patch(color=TRAIN, label="rows the model sees (fit and predict)"),
            Patch(color=FORECAST, label="forecast (target) days"),
        ],
        loc="lower left",
        fontsize=8,
        framealpha=0.9,
    )
    sliding.set_xlim(SHOWN_FROM - 3 * DAY, last + 2 * DAY)
    sliding.xaxis.set_major_locator(mdates.WeekdayLocator(byweekday=mdates.SA, interval=1))
    sliding.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    plt.setp(sliding.get_xticklabels(), rotation=90, fontsize=7)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=130)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
