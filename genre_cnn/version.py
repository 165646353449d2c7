"""The package version (read by setup.cfg and written into every model's config.json)."""

__version__ = "0.1.0"
