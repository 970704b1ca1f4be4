"""The analyses of an evaluation frame as exactly mergeable statistics: signal quality, the
strategy, the per-card table, the overview and the plots' sample."""
