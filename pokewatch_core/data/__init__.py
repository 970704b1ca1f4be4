"""Price tables: reading and validating them (``tables``), as-of lookups (``price_index``), the
naive forecast (``naive``), the synthetic sample panel (``sample_data``) and snapshot features
(``features``)."""
