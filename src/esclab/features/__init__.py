"""Log-mel features: pure math, modules, and the on-disk cache."""

from esclab.features.frontend import KaldiLogMel, LogMel, Standardize, band_statistics, build_frontend

__all__ = ["KaldiLogMel", "LogMel", "Standardize", "band_statistics", "build_frontend"]
