"""Prediction results: the records the CLI prints and the web API returns, the sliding-window
arithmetic that builds them for long recordings, and their text formats (table, CSV, JSON)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from statistics import fmean
from typing import Any

from esclab.errors import EsclabError


@dataclass
class ClassScore:
    """One class and its score: a softmax probability or a sigmoid score (the record's ``scores`` says which)."""

    label: str
    score: float


@dataclass
class Window:
    """One sliding window of a long recording, ``[start_s, end_s)`` in seconds, and its top classes."""

    start_s: float
    end_s: float
    top_k: list[ClassScore]
    unknown: bool = False  # the rejection rule turned it away: ``top_k`` starts with an ``unknown`` entry


@dataclass
class Segment:
    """Consecutive windows sharing their top class, merged.

    ``score`` is the label's mean score over the merged windows.
    """

    start_s: float
    end_s: float
    label: str
    score: float


@dataclass
class Event:
    """One sound event of a long recording (:mod:`esclab.inference.events`): ``[onset, offset)`` in seconds, its
    class, and ``score``, the class's mean smoothed score over the windows the event spans."""

    onset: float
    offset: float
    label: str
    score: float


@dataclass
class Prediction:
    """The result for one file: top classes, and for long recordings its windows, segments and (when asked) events.

    ``error`` is set (and the results empty) when the file could not be classified. ``scores`` says what
    the scores are (``softmax: ...`` or ``sigmoid: ...``, from :data:`esclab.inference.scorer.SCORE_NOTES`).
    ``unknown``: the best score was below ``reject_below`` (the rejection rule), so the answer is
    ``unknown``: ``top_k`` starts with an ``unknown`` entry carrying that best score, then the known classes.
    """

    file: str
    duration_s: float = 0.0
    top_k: list[ClassScore] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None
    scores: str = ""
    unknown: bool = False
    reject_below: float | None = None
    events: list[Event] = field(default_factory=list)  # long recordings, when events were asked for

    @classmethod
    def failed(cls, path: str | Path, err: Exception, scores: str = "") -> Prediction:
        """An error record; a message starting with the path has the path dropped (the record names it)."""
        return cls(file=str(path), error=str(err).removeprefix(f"{path}: "), scores=scores)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: every ``score`` also under ``probability``, its name before 0.2.0 (until 0.3.0)."""
        return asdict(self, dict_factory=_with_probability_alias)


def _with_probability_alias(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(fields)
    if "score" in record:
        record["probability"] = record["score"]
    return record


class WindowError(EsclabError, ValueError):
    """Sliding-window settings that cannot cover a recording; the message says which and why."""


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of windows of ``window`` samples every ``hop`` that cover ``n_samples``.

    The first window starts at 0 and the last one reaches the end of the file (it is
    zero-padded past the end when the hop does not divide the remainder).

    Raises:
        WindowError: ``window`` not positive, or ``hop`` not in ``(0, window]`` (a gap between windows).
    """
    if window < 1 or not 0 < hop <= window:
        raise WindowError(f"need window > 0 and 0 < hop <= window, got window={window}, hop={hop} samples")
    if n_samples <= window:
        return [0]
    return [i * hop for i in range(math.ceil((n_samples - window) / hop) + 1)]


def merge_segments(windows: list[Window], duration_s: float) -> list[Segment]:
    """Merge consecutive windows with the same top class into segments that tile ``[0, duration_s]``.

    Windows overlap, so each window is taken to own the time from its start to the next
    window's start (the last one owns up to the end of the file); a segment spans the
    time its windows own.
    """
    ends = [w.start_s for w in windows[1:]] + [duration_s]
    segments = []
    for label, pairs in groupby(zip(windows, ends, strict=True), key=lambda pair: pair[0].top_k[0].label):
        run = list(pairs)
        segments.append(Segment(start_s=run[0][0].start_s, end_s=run[-1][1], label=label,
                                score=fmean(w.top_k[0].score for w, _ in run)))
    return segments


FORMATS = ("table", "json", "csv")


def result_rows(results: list[Prediction], long: bool = False, *, windows: bool = False,
                score: str = "probability") -> tuple[list[str], list[list[str]]]:
    """Header and rows naming each file.

    One row per file with its top classes (``label_i``, ``{score}_i``); with ``long`` one row per
    merged segment; with ``windows`` one row per sliding window with its top classes. A failed file
    gets one row with only ``file`` and ``error``. ``score`` names the score columns (``sigmoid``
    for multi-label tags).
    """
    if windows:
        k = max((len(w.top_k) for r in results for w in r.windows), default=0)
        header = ["file", "start_s", "end_s", *_score_header(k, score)]
    elif long:
        header = ["file", "start_s", "end_s", "label", score]
    else:
        header = ["file", *_score_header(max((len(r.top_k) for r in results), default=0), score)]
    width = len(header) - 1
    rows = []
    for r in results:
        if r.error is not None:
            rows.append([r.file] + [""] * width + [r.error])
        elif windows:
            rows += [[r.file, f"{w.start_s:.2f}", f"{w.end_s:.2f}", *_score_cells(w.top_k, width - 2), ""]
                     for w in r.windows]
        elif long:
            rows += [[r.file, f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label, f"{s.score:.4f}", ""]
                     for s in r.segments]
        else:
            rows.append([r.file, *_score_cells(r.top_k, width), ""])
    return header + ["error"], rows


def _score_header(k: int, score: str) -> list[str]:
    return [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", score)]


def _score_cells(scores: list[ClassScore], width: int) -> list[str]:
    """Label and score cells, padded with empty cells to ``width``."""
    cells = [c for s in scores for c in (s.label, f"{s.score:.4f}")]
    return [*cells, *[""] * (width - len(cells))]


def format_results(results: list[Prediction], fmt: str = "table", long: bool = False, *,
                   windows: bool = False, score: str = "probability") -> str:
    """Render results as ``table``, ``csv`` (rows of :func:`result_rows`) or ``json`` (full records)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    header, rows = result_rows(results, long, windows=windows, score=score)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        return buffer.getvalue().rstrip("\n")
    return _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; an error row shows its file then ``ERROR: message``."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=False))]
    for *cells, error in rows:
        if error:
            lines.append(f"{cells[0].ljust(widths[0])}  ERROR: {error}")
        else:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)
