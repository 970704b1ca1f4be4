"""The default PokeWatch plugins: the moving-average baseline, the default metrics and the
threshold signal policy. They reach PokeWatch through the ``pokewatch`` entry-point group,
like any third-party plugin, and use only the public names of ``pokewatch_core``."""
