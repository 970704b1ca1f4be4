"""Rebuild the embedded sample data set (pokewatch_core/data/sample/sv2a_sample.parquet).

Usage: uv run python scripts/make_sample_data.py

The generator, its seed and its model are documented in pokewatch_core/data/sample_data.py.
"""

from pokewatch_core.data.sample_data import embedded_sample_path, write_sample

if __name__ == "__main__":
    path = embedded_sample_path()
    frame = write_sample(path)
    print(f"wrote {path}: {len(frame)} rows, {frame['card_id'].nunique()} cards")
