"""The local evaluation of one specification: fit, predict, decide, score (``runner``), and
what a result shows (``summary``, ``plots``)."""
