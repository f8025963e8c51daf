"""Plain result records for predictions: what the CLI prints and the web API returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ClassScore:
    """One class and its softmax probability."""

    label: str
    probability: float


@dataclass
class Window:
    """One sliding window of a long recording, ``[start_s, end_s)`` in seconds, and its top classes."""

    start_s: float
    end_s: float
    top_k: list[ClassScore]


@dataclass
class Segment:
    """Consecutive windows sharing their top class, merged.

    ``probability`` is the label's mean probability over the merged windows.
    """

    start_s: float
    end_s: float
    label: str
    probability: float


@dataclass
class Prediction:
    """The result for one file: top classes, and for long recordings its windows and segments.

    ``error`` is set (and everything else empty) when the file could not be classified.
    """

    file: str
    duration_s: float = 0.0
    top_k: list[ClassScore] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def failed(cls, path: str | Path, err: Exception) -> Prediction:
        """An error record; a message starting with the path has the path dropped (the record names it)."""
        return cls(file=str(path), error=str(err).removeprefix(f"{path}: "))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
