"""``python -m pokewatch_core`` runs the ``pokewatch`` command line."""

from pokewatch_core.cli import main

if __name__ == "__main__":
    main()
