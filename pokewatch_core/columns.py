"""The column names of a price table and of an evaluation frame (docs/user-guide.md)."""

ID, DATE, PRICE = "card_id", "date", "market_price"
PREDICTED, SIGNAL = "predicted_price", "signal"  # the columns the evaluation adds
# the columns of a backtest: a forecast's cutoff and horizon, the first date of a sliding
# training window, and the naive forecast (the last observed price on or before the cutoff)
CUTOFF, HORIZON, WINDOW_START, NAIVE = "cutoff", "horizon", "window_start", "naive_price"
