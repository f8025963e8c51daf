"""Event tables for long recordings: sliding-window scores -> ``Event(onset, offset, label, score)``.

:func:`find_events` is pure; :meth:`esclab.inference.Scorer.detect_events` runs the windows and calls it. The
steps, each with a setting of :class:`EventSettings` (the defaults are its field defaults):

1. Smoothing: each class's score track is median-filtered over ``median`` consecutive windows (odd; the edge
   windows repeated), so a single window that differs from its neighbours neither starts an event nor
   breaks one.
2. Window labels: a window is silence when its level (RMS of its samples in dBFS, :func:`window_levels`) is
   below ``min_level_db``; it is no event when the rejection rule answers ``unknown`` for its smoothed scores
   (so background is not reported as a class, and neither is a window whose neighbours disagree so much that
   no class keeps a high median); otherwise its label is its best smoothed class.
3. Time: windows overlap, so each window owns the time around its centre: from halfway between its centre
   and the previous window's to halfway to the next one's (the first from 0, the last to the end), one hop
   for evenly spaced windows. Consecutive windows with the same label make an event spanning the time they
   own. (The segments of a timeline, :func:`~esclab.inference.results.merge_segments`, give each window the
   time from its start to the next start instead: that places every boundary half a window earlier than
   the sound, which a tiling of the recording can afford and an event with a 1-s collar cannot.)
4. Events of one label less than ``merge_gap_s`` apart are joined (another label's short event between
   them stays, overlapping the joined one); then events shorter than ``min_duration_s`` (default three
   quarters of the window) are dropped.
5. An event's ``score`` is its label's mean smoothed score over the windows it spans.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from esclab.errors import EsclabError
from esclab.inference.results import Event, Prediction

#: Hop between event windows when a call names none (capped at the window), in seconds: the event
#: boundaries move in steps of one hop, a half of the 1-s collar events are judged with.
EVENT_HOP_S = 0.5
#: Event windows when a call names none (capped at the model's clip length), in seconds: a boundary lands
#: up to half a window from the sound that caused it, so the clip length (5 s on ESC-50) blurs them. On
#: soundscapes of training clips (median 3, 0.5-s minimum, 1-s gap) 2 s gave an onset F1 of 0.62, 1 s 0.38,
#: 3 s 0.47, 5 s 0.23 (issue 25).
EVENT_WINDOW_S = 2.0
#: The level of a window of digital silence (an RMS of 0), in dBFS.
SILENT_DB = -200.0
#: The event table's CSV columns.
EVENT_COLUMNS = ("file", "onset", "offset", "label", "score")


class EventError(EsclabError, ValueError):
    """Event settings that cannot work; the message says which and why."""


@dataclass(frozen=True)
class EventSettings:
    """How window scores become events (see the module notes).

    The defaults were chosen on synthetic soundscapes of clips the models had been trained on, never on a
    test fold (``benchmarks/bench_events.py --source train``, benchmarks/RESULTS.md, issue 25).

    Args:
        median: windows in the median filter over each class's scores (odd; 1: none). 3 removes a one-window
            blip and keeps any run of two or more; 5 scored the same within noise.
        min_duration_s: events shorter than this are dropped; ``None``: three quarters of the window (1.5 s
            for the default 2-s window). A sound, however short, is in every window that overlaps it, so a
            model that hears it gives an event about a window long; the shorter ones are a few windows
            that caught the edge of a sound and mistook it (at 0.5 s, precision fell from 0.52 to 0.40).
        merge_gap_s: events of one label closer than this are joined; 1.5 s bridges up to two windows at the
            default hop, joining a sound that pauses (dog barks, footsteps) or a label that flickers for a
            window or two, without joining sounds that are seconds apart.
        min_level_db: windows quieter than this RMS level in dBFS are silence (a full-scale sine is -3 dBFS);
            -60 dBFS gates digital and near silence and stays below any recorded background noise.

    Raises:
        EventError: an even or non-positive ``median``, a negative or non-finite duration or gap, or a NaN level.
    """

    median: int = 3
    min_duration_s: float | None = None
    merge_gap_s: float = 1.5
    min_level_db: float = -60.0

    def __post_init__(self):
        if self.median < 1 or self.median % 2 == 0:
            raise EventError(f"the median filter needs an odd number of windows >= 1, got {self.median}")
        for name in ("min_duration_s", "merge_gap_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise EventError(f"{name} must be a finite number of seconds >= 0, got {value}")
        if math.isnan(self.min_level_db):
            raise EventError("min_level_db must be a number of dBFS (-inf: no level gate), got nan")

    def min_duration(self, window_s: float) -> float:
        """The shortest event kept with windows of ``window_s``: ``min_duration_s``, or 3/4 of the window."""
        return 0.75 * window_s if self.min_duration_s is None else self.min_duration_s


def window_levels(wave: np.ndarray, starts: Sequence[int], window: int) -> np.ndarray:
    """RMS level in dBFS of each window ``wave[s:s + window]`` of ``(samples,)`` ``wave`` -> ``(N,)``.

    Only the recording's own samples count (not the zero padding past its end); digital silence is
    :data:`SILENT_DB`.
    """
    levels = [np.sqrt(np.mean(np.square(wave[s:s + window], dtype=np.float64))) for s in starts]
    return 20 * np.log10(np.maximum(levels, 10 ** (SILENT_DB / 20)))


def median_smooth(values: np.ndarray, kernel: int) -> np.ndarray:
    """Median over ``kernel`` (odd) consecutive rows of ``(N, ...)`` ``values``, centred on each row; the first
    and last rows are repeated past the edges. Same shape as ``values``."""
    if kernel == 1 or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    half = kernel // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), [(half, half)] + [(0, 0)] * (values.ndim - 1), mode="edge")
    return np.median(sliding_window_view(padded, kernel, axis=0), axis=-1)


def window_bounds(starts_s: Sequence[float], ends_s: Sequence[float]) -> np.ndarray:
    """``N + 1`` boundaries: window ``i`` owns ``[bounds[i], bounds[i + 1])``, the time around its centre
    (halfway to its neighbours' centres; the first from 0, the last to the last window's end)."""
    centres = (np.asarray(starts_s, dtype=np.float64) + np.asarray(ends_s, dtype=np.float64)) / 2
    return np.r_[0.0, (centres[1:] + centres[:-1]) / 2, ends_s[-1]] if len(centres) else np.zeros(1)


@dataclass
class _Run:
    """Consecutive windows of one label: the time they own and the sum of its smoothed scores over them."""

    label: int
    onset: float
    offset: float
    total: float
    count: int

    def join(self, other: _Run) -> _Run:
        return _Run(self.label, self.onset, other.offset, self.total + other.total, self.count + other.count)


def find_events(scores: np.ndarray, starts_s: Sequence[float], ends_s: Sequence[float], levels_db: Sequence[float],
                class_names: Sequence[str], settings: EventSettings | None = None,
                is_unknown: Callable[[np.ndarray], bool] | None = None) -> list[Event]:
    """The sound events of one recording from its sliding windows (the steps are in the module notes).

    Args:
        scores: ``(N, num_classes)`` window scores (softmax or sigmoid), windows in time order.
        starts_s: each window's start in seconds.
        ends_s: each window's end in seconds (the last one: the end of the recording); the longest window
            is the window length of the default minimum duration.
        levels_db: each window's RMS level in dBFS (:func:`window_levels`).
        class_names: the scores' classes, in column order.
        settings: smoothing, level gate, merge gap and minimum duration (default :class:`EventSettings`).
        is_unknown: the rejection rule, ``(num_classes,)`` smoothed scores -> whether the answer is ``unknown``
            (:meth:`esclab.inference.Scorer.is_unknown`); ``None``: it never is.

    Returns:
        Events sorted by onset.
    """
    settings = settings or EventSettings()
    smoothed = median_smooth(np.asarray(scores), settings.median)
    rejected = np.array([is_unknown is not None and is_unknown(row) for row in smoothed], dtype=bool)
    silent = np.asarray(levels_db, dtype=np.float64) < settings.min_level_db
    labels = np.where(silent | rejected, -1, smoothed.argmax(axis=1)) if len(smoothed) else np.zeros(0, int)
    bounds = window_bounds(starts_s, ends_s)
    runs, i = [], 0
    for label, group in groupby(labels.tolist()):
        n = len(list(group))
        if label >= 0:
            runs.append(_Run(label, bounds[i], bounds[i + n], float(smoothed[i:i + n, label].sum()), n))
        i += n
    merged: list[_Run] = []
    latest: dict[int, int] = {}  # label -> index in merged of its latest event
    for run in runs:
        j = latest.get(run.label)
        if j is not None and run.onset - merged[j].offset < settings.merge_gap_s:
            merged[j] = merged[j].join(run)
        else:
            latest[run.label] = len(merged)
            merged.append(run)
    shortest = settings.min_duration(float(np.max(np.subtract(ends_s, starts_s)))) if len(merged) else 0.0
    return sorted((Event(float(r.onset), float(r.offset), class_names[r.label], r.total / r.count)
                   for r in merged if r.offset - r.onset >= shortest), key=lambda e: e.onset)


def events_csv(results: Sequence[Prediction]) -> str:
    """The event table of ``results``: a header (:data:`EVENT_COLUMNS`) and one row per event, times in seconds.

    Files that failed have no row (their error is in the command's main output and exit status).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVENT_COLUMNS)
    writer.writerows([r.file, f"{e.onset:.3f}", f"{e.offset:.3f}", e.label, f"{e.score:.4f}"]
                     for r in results for e in r.events)
    return buffer.getvalue()
