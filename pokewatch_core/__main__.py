"""``python -m pokewatch_core`` runs the ``pokewatch`` command line."""

import os
import sys

# `python -m` puts the working directory first on sys.path: a `pokewatch_plugins/` folder
# there (or any module named like a plugin's) would be imported in place of the installed
# plugins. The command must behave as the `pokewatch` script does, so drop that entry.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from pokewatch_core.cli import main

if __name__ == "__main__":
    main()
