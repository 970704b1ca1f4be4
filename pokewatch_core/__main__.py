"""``python -m pokewatch_core`` runs the ``pokewatch`` command line."""

# The package's __init__ has dropped the working directory from sys.path (where `python -m`
# puts it) before anything was imported: the command behaves as the `pokewatch` script does.
from pokewatch_core.cli import main

if __name__ == "__main__":
    main()
