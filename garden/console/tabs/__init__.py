"""One module per console tab; each has ``render(config, key, signed_in)``."""
