"""The package version, read by hatch and by the server extension."""

__version__ = "0.1.0"
