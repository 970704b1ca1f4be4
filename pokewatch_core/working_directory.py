"""Under ``python -m pokewatch_core``, drop the working directory from ``sys.path``.

``python -m`` puts the working directory first on ``sys.path`` while it imports this package:
a ``pluggy.py`` or ``pandas/`` there would be imported in place of the installed one, and a
``pokewatch_plugins/`` in place of the default plugins. The package imports this module before
anything else, so the command behaves as the ``pokewatch`` script does. Another tool run with
``python -m`` that imports PokeWatch keeps its working directory.
"""

from __future__ import annotations

import os
import sys


def launched_as_module() -> bool:
    """Whether this process is ``python -m pokewatch_core[.…]``, still locating it."""
    argv = getattr(sys, "orig_argv", [])
    if sys.argv[:1] != ["-m"] or "-m" not in argv[:-1]:
        return False
    return bool(argv[argv.index("-m") + 1].split(".")[0] == "pokewatch_core")


if launched_as_module() and sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
