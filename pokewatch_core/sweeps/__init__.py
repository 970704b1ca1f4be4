"""Parameter sweeps: grids, combinations, trials on one engine, ranking."""
