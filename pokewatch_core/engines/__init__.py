"""Engines: where an evaluation runs. ``evaluate()`` is the front door; the local engine holds
the table in this process, the dask engine partitions it by card on a cluster."""
