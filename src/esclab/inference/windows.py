"""Sliding-window arithmetic for long recordings: window starts and segment merging."""

from __future__ import annotations

import math
from itertools import groupby
from statistics import fmean

from esclab.inference.results import Segment, Window


class WindowError(ValueError):
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
                                probability=fmean(w.top_k[0].probability for w, _ in run)))
    return segments
