"""esclab: environmental sound classification toolkit."""

__version__ = "0.2.0"
