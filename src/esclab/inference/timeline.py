"""The timeline of a long recording: its log-mel under a strip of labelled segments."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from esclab.inference.results import Segment


def timeline_figure(db: np.ndarray, seconds: float, segments: list[Segment], class_names: list[str],
                    title: str = "") -> Figure:
    """A recording's log-mel ``(n_mels, frames)`` in dB under its segments, one colour per class.

    Built without pyplot; write it with :func:`esclab.evaluate.plots.save` or embed it with
    :func:`esclab.evaluate.plots.to_data_uri`.
    """
    fig = Figure(figsize=(max(8.0, min(24.0, seconds / 4)), 4.0))
    strip, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 4]})
    colors = colormaps["tab20"]
    for seg in segments:
        index = class_names.index(seg.label)
        strip.axvspan(seg.start_s, seg.end_s, color=colors(2 * index % 20 + index // 10 % 2), alpha=0.85)
        strip.text((seg.start_s + seg.end_s) / 2, 0.5, f"{seg.label}\n{seg.score:.2f}", ha="center",
                   va="center", fontsize=7, clip_on=True)
        ax.axvline(seg.start_s, color="white", linewidth=0.8, alpha=0.7)
    strip.set_yticks([])
    strip.set_title(title)
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0.0, seconds, 0, db.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_xlim(0.0, seconds)
    fig.tight_layout()
    return fig
