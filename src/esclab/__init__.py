"""esclab: environmental sound classification toolkit."""

__version__ = "0.1.0"
