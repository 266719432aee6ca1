"""The package version, in a leaf of its own: the master side reads it without the public API."""

__version__ = "0.1.0"
