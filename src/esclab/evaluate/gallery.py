"""The misclassified gallery: worst mistakes first, each with its log-mel, heatmap and playable audio."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from esclab.audio import resample
from esclab.bundle import Bundle
from esclab.evaluate.clips import load_clips
from esclab.evaluate.heatmaps import explain
from esclab.evaluate.plots import SpectrogramPanel, spectrogram_figure, to_data_uri


def worst_mistakes(predictions: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """Misclassified rows, highest (wrong) confidence first, at most ``limit`` (``None``: all)."""
    wrong = predictions[predictions["pred"] != predictions["target"]]
    wrong = wrong.sort_values("confidence", ascending=False, kind="stable")
    return wrong if limit is None else wrong.head(limit)


def audio_data_uri(wave: np.ndarray, sample_rate: int, band_rate: int | None = None) -> str:
    """``(samples,)`` float waveform -> ``data:audio/ogg;base64,...`` (Ogg Vorbis, ~30 kB per 5 s).

    With a ``band_rate`` below ``sample_rate`` (the training data's rate) the clip is written at that
    rate: it holds nothing above ``band_rate / 2``, and Vorbis at 32 kHz would spend 3x the bytes on it.
    """
    if band_rate is not None and band_rate < sample_rate:
        wave, sample_rate = resample(wave, sample_rate, band_rate), band_rate
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="OGG", subtype="VORBIS")
    return "data:audio/ogg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class GalleryItem:
    """One misclassified clip as the page shows it (``image`` and ``audio`` are data URIs)."""

    clip_id: str
    path: str
    fold: int
    true: str
    predicted: str
    confidence: float
    heatmap: str
    image: str
    audio: str

    def numbers(self) -> dict[str, Any]:
        """Everything but the encoded media, for ``report.json``."""
        return {k: v for k, v in vars(self).items() if k not in ("image", "audio")}


def build_gallery(mistakes: pd.DataFrame, bundle_for: Callable[[int], Bundle]) -> tuple[list[GalleryItem], int]:
    """Render ``mistakes`` (rows of ``predictions.csv``) with each fold's own model.

    Each image has two panels: the log-mel spectrogram, and the same with the heatmap for the
    predicted class (what made the model say it).

    Args:
        mistakes: rows to show, in display order.
        bundle_for: fold -> the bundle trained for that fold.

    Returns:
        The items in the order of ``mistakes`` and the number of clips whose audio could not be read.
    """
    items: dict[int, GalleryItem] = {}
    unreadable = 0
    for fold, rows in mistakes.groupby("fold", sort=True):
        bundle = bundle_for(int(fold))
        waves, ok = load_clips(rows["path"].tolist(), bundle.audio)
        unreadable += int((~ok).sum())
        rows = rows[ok]
        seconds_per_frame = bundle.seconds_per_frame
        for (index, row), wave, shown in zip(rows.iterrows(), waves, explain(bundle, waves, rows["pred"].to_numpy()),
                                             strict=True):
            panels = [SpectrogramPanel(shown.spec_db, None, f"{row['clip_id']}: true {row['label']}"),
                      SpectrogramPanel(shown.spec_db, shown.heat,
                                       f"{shown.method} for predicted {row['pred_label']} ({row['confidence']:.2f})")]
            items[index] = GalleryItem(
                clip_id=str(row["clip_id"]), path=str(row["path"]), fold=int(fold), true=str(row["label"]),
                predicted=str(row["pred_label"]), confidence=float(row["confidence"]), heatmap=shown.method,
                image=to_data_uri(spectrogram_figure(panels, seconds_per_frame, panel_size=(3.6, 2.2)), dpi=80,
                                  photo=True),
                audio=audio_data_uri(wave, bundle.audio.sample_rate, bundle.audio.band_rate))
    return [items[i] for i in mistakes.index if i in items], unreadable
