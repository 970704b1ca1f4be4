"""The column names of a price table and of an evaluation frame (DESIGN §2, §4)."""

ID, DATE, PRICE = "card_id", "date", "market_price"
PREDICTED, SIGNAL = "predicted_price", "signal"  # the columns the evaluation adds
