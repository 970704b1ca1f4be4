"""The column names of a price table and of an evaluation frame (docs/user-guide.md)."""

ID, DATE, PRICE = "card_id", "date", "market_price"
PREDICTED, SIGNAL = "predicted_price", "signal"  # the columns the evaluation adds
