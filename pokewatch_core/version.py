"""The installed version of the ``pokewatch`` distribution.

The build takes it from git (hatch-vcs): ``0.1.0`` on the commit tagged ``v0.1.0``,
``0.1.1.devN+g<hash>`` N commits after it, the ``fallback-version`` of pyproject.toml where no
git history is at hand. ``uv sync``/``uv run`` reinstall the project when the commit or a tag
changes (``[tool.uv] cache-keys``), so the installed version follows the checkout. Logged models
pin ``pokewatch==<this>`` and the dask engine compares it with its workers'.
"""

from importlib import metadata

try:
    __version__ = metadata.version("pokewatch")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
