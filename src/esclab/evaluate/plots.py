"""Matplotlib figures (Agg backend): each function returns a Figure, :func:`save` writes it."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from esclab.fsutil import atomic_write  # noqa: E402


def confusion_figure(matrix: np.ndarray, class_names: list[str], normalize: bool = False,
                     title: str = "Confusion matrix") -> Figure:
    """Heatmap readable with 50 classes: small tick labels, counts written only where non-zero."""
    data = matrix.astype(float)
    if normalize:
        data = data / np.maximum(data.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    size = max(6.0, 0.28 * n + 3)
    fig, ax = plt.subplots(figsize=(size, size * 0.92))
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if normalize else max(1, data.max()))
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), class_names, fontsize=7 if n > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title + (" (row-normalised)" if normalize else ""))
    threshold = data.max() / 2 if data.max() > 0 else 1
    for i, j in zip(*np.nonzero(matrix), strict=True):
        text = f"{data[i, j]:.2f}".lstrip("0") if normalize else str(int(matrix[i, j]))
        ax.text(j, i, text, ha="center", va="center", fontsize=5 if n > 20 else 8,
                color="white" if data[i, j] > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` atomically in the format its suffix names (``.png``, ``.svg``, ...) and close it."""
    path = Path(path)
    atomic_write(path, lambda fh: fig.savefig(fh, format=path.suffix[1:], dpi=dpi))
    plt.close(fig)
    return path


def to_data_uri(fig: Figure, dpi: int = 100, photo: bool = False) -> str:
    """Encode ``fig`` as a ``data:image/...;base64,...`` URI and close it.

    PNG by default (lines and text stay sharp); ``photo=True`` writes a JPEG (quality 85), about a
    fifth of the bytes for images that are mostly spectrogram pixels.
    """
    buffer = io.BytesIO()
    if photo:
        fig.savefig(buffer, format="jpeg", dpi=dpi, pil_kwargs={"quality": 85})
    else:
        fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    mime = "jpeg" if photo else "png"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def grouped_bar_figure(categories: list[str], series: dict[str, list[float]],
                       errors: dict[str, list[float]] | None = None, ylabel: str = "",
                       title: str = "", ylim: tuple[float, float] | None = None) -> Figure:
    """Vertical bars, one group per category and one bar per series, with optional error bars."""
    errors = errors or {}
    x = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(categories) * len(series) + 2), 3.6))
    for i, (name, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=errors.get(name),
                      capsize=4, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
    ax.set_xticks(x, categories, rotation=20 if max(map(len, categories), default=0) > 12 else 0, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:  # round ticks within ylim; headroom above it for the legend, so it never covers bars or labels
        ticks = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(*ylim)
        ax.set_yticks(ticks[(ticks >= ylim[0] - 1e-9) & (ticks <= ylim[1] + 1e-9)])
        ax.set_ylim(ylim[0], ylim[1] + 0.2 * (ylim[1] - ylim[0]))
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper right", ncol=len(series), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def reliability_figure(before: dict[str, list[float]], after: dict[str, list[float]], title: str = "") -> Figure:
    """Reliability diagram: accuracy against confidence per bin (:func:`esclab.calibration.reliability_bins`),
    before and after calibration, with the diagonal of perfect calibration and each bin's clip count."""
    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.2, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect calibration")
    width = (before["upper"][0] - before["lower"][0]) if before["upper"] else 1 / 15
    for bins, name, colour in ((before, "before", "tab:red"), (after, "after", "tab:blue")):
        ax.plot(bins["confidence"], bins["accuracy"], marker="o", color=colour, label=f"{name} calibration")
        centres = [(lo + hi) / 2 for lo, hi in zip(bins["lower"], bins["upper"], strict=True)]
        offset = -width / 4 if name == "before" else width / 4
        counts.bar([c + offset for c in centres], bins["count"], width / 2, color=colour, alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    counts.set_yscale("log")
    counts.set_xlabel("confidence (best class's probability)")
    counts.set_ylabel("clips")
    counts.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def count_bias_figure(class_names: list[str], true_counts: list[int], predicted_counts: list[int],
                      flags: list[str], title: str = "Predicted vs true count per class") -> Figure:
    """Horizontal bars per class: the true count (grey) under the predicted count.

    Predicted bars are red for classes flagged ``"over"``, blue for ``"under"``, dark grey otherwise.
    """
    n = len(class_names)
    colors = {"over": "tab:red", "under": "tab:blue"}
    y = np.arange(n)
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.2 * n + 1.4)))
    ax.barh(y, true_counts, height=0.8, color="0.85")
    ax.barh(y, predicted_counts, height=0.4, color=[colors.get(f, "0.3") for f in flags])
    legend = [Patch(color="0.85", label="true count"), Patch(color="0.3", label="predicted count"),
              Patch(color=colors["over"], label="predicted, over-predicted class"),
              Patch(color=colors["under"], label="predicted, under-predicted class")]
    ax.set_yticks(y, class_names, fontsize=7 if n > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title(title)
    fig.legend(handles=legend, fontsize=7, loc="lower center", ncol=2, frameon=False)
    ax.margins(y=0.01)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
    return fig


@dataclass
class Line:
    """One curve of a :func:`line_panels_figure` panel."""

    label: str
    x: list[float]
    y: list[float]
    style: str = "-o"
    color: str | None = None


@dataclass
class LinePanel:
    """One axes of a :func:`line_panels_figure`: its curves and labels.

    ``xticks`` names the x positions (e.g. ``"clean"`` for an infinite SNR plotted at 0);
    ``integer_x`` keeps ticks on whole numbers (epochs).
    """

    title: str
    xlabel: str
    ylabel: str
    lines: list[Line]
    xticks: tuple[list[float], list[str]] | None = None
    ylim: tuple[float, float] | None = None
    integer_x: bool = False


def line_panels_figure(panels: list[LinePanel], title: str = "") -> Figure:
    """Side-by-side line plots sharing one legend per panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for line in panel.lines:
            ax.plot(line.x, line.y, line.style, label=line.label, color=line.color, markersize=4)
        if panel.xticks:
            ax.set_xticks(*panel.xticks)
        if panel.ylim:
            ax.set_ylim(*panel.ylim)
        if panel.integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def value_grid_figure(values: np.ndarray, row_names: list[str], col_names: list[str], title: str = "",
                      vmin: float = 0.0, vmax: float = 1.0) -> Figure:
    """A ``(rows, cols)`` heatmap with each value written in its cell (e.g. per-class accuracy per run)."""
    rows, cols = values.shape
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * cols + 3), max(2.5, 0.22 * rows + 1.5)))
    im = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(cols), col_names, rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(rows), row_names, fontsize=7 if rows > 20 else 9)
    for i, j in np.ndindex(values.shape):
        if np.isfinite(values[i, j]):
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6 if rows > 20 else 8,
                    color="black" if values[i, j] > (vmin + vmax) / 2 else "white")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


@dataclass
class SpectrogramPanel:
    """A log-mel ``(n_mels, frames)`` in dB, an optional ``[0, 1]`` heatmap of the same shape, a title."""

    spec_db: np.ndarray
    heat: np.ndarray | None
    title: str


def spectrogram_figure(panels: list[SpectrogramPanel], seconds_per_frame: float, ncols: int = 2,
                       panel_size: tuple[float, float] = (4.2, 2.4)) -> Figure:
    """A grid of log-mel images, time in seconds and mel band upwards; heatmaps overlaid in ``jet``."""
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        n_mels, frames = panel.spec_db.shape
        extent = (0.0, frames * seconds_per_frame, 0.0, float(n_mels))
        ax.imshow(panel.spec_db, origin="lower", aspect="auto", cmap="magma", extent=extent)
        if panel.heat is not None:
            ax.imshow(panel.heat, origin="lower", aspect="auto", cmap="jet", alpha=0.45, vmin=0, vmax=1,
                      extent=extent)
        ax.set_title(panel.title, fontsize=8)
        ax.set_xlabel("time (s)", fontsize=7)
        ax.set_ylabel("mel band", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
