"""Log-mel features: pure math, modules, and the on-disk cache."""

from esclab.features.frontend import LogMel, Standardize, band_statistics

__all__ = ["LogMel", "Standardize", "band_statistics"]
