"""Matplotlib figures (Agg backend): each function returns a Figure, :func:`save` writes it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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
    for i, j in zip(*np.nonzero(matrix)):
        text = f"{data[i, j]:.2f}".lstrip("0") if normalize else str(int(matrix[i, j]))
        ax.text(j, i, text, ha="center", va="center", fontsize=5 if n > 20 else 8,
                color="white" if data[i, j] > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
