"""pokewatch-ewma: an example third-party PokeWatch plugin."""
