"""The installed version of the ``pokewatch`` distribution."""

from importlib import metadata

try:
    __version__ = metadata.version("pokewatch")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
