"""Plugins: loading entry points into registries (``registry``), listing them (``catalog``) and
building components from names, classes or instances (``resolve``)."""
