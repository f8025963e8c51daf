"""``Predictor``: a bundle's model and front end applied to files, waveforms and long recordings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from esclab.audio import check_waveform, load_audio, pad_or_trim, resample
from esclab.bundle import Bundle, load_bundle
from esclab.features.frontend import build_frontend
from esclab.inference.results import (
    ClassScore,
    Prediction,
    Window,
    WindowError,
    merge_segments,
    window_starts,
)
from esclab.models import prepare_for_inference
from esclab.runs import resolve_checkpoint

BATCH_SIZE = 32
T = TypeVar("T")


def batches(items: Iterable[T], size: int = BATCH_SIZE) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items, so a generator of many windows stays small in memory."""
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


class Predictor:
    """Classifies audio the way the bundle's model was trained.

    Every clip is made like a training clip: decoded to mono, resampled to the bundle's
    ``audio.sample_rate``, then zero-padded at the end or cut to the bundle's clip length
    (``audio.duration``). A 50 ms clip is thus padded with silence, and a file longer than
    the clip length is judged on its first ``audio.duration`` seconds by :meth:`predict_file`;
    :meth:`predict_long` covers a whole recording with sliding windows.

    Args:
        bundle: a loaded bundle; its model is prepared for inference here (BatchNorms folded into the
            convolutions before them, channels-last memory format), so it is no longer one to train or save.
        checkpoint: the file it came from, for display.

    Example (a bundle written here from an untrained model; ``esclab cv`` writes one per fold):
        >>> import tempfile
        >>> from esclab.bundle import save_bundle
        >>> from esclab.config import AudioConfig, FeatureConfig
        >>> from esclab.models import create_model
        >>> audio, features = AudioConfig(sample_rate=8000, duration=1.0), FeatureConfig(n_mels=32, n_fft=256,
        ...                                                                              hop_length=128, frames=63)
        >>> options = {"channels": [4, 8, 8], "dense_units": [8]}
        >>> model = create_model("paper_cnn_gap", num_classes=2, input_size=features.input_size, **options)
        >>> path = save_bundle(Path(tempfile.mkdtemp()) / "model.ckpt", model, "paper_cnn_gap", options,
        ...                    ["dog", "rain"], audio, features)
        >>> predictor = Predictor.from_checkpoint(path)
        >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)  # 1 s at 16 kHz
        >>> prediction = predictor.predict_wave(tone, sample_rate=16000, top_k=2)
        >>> sorted(score.label for score in prediction.top_k), round(sum(s.probability for s in prediction.top_k), 4)
        (['dog', 'rain'], 1.0)
    """

    def __init__(self, bundle: Bundle, checkpoint: Path | None = None):
        prepare_for_inference(bundle.model)  # same results in about half the CPU time
        self.bundle = bundle
        self.checkpoint = checkpoint
        self._display_logmel = build_frontend(bundle.audio, replace(bundle.features, frames=None))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        """Load a bundle ``.ckpt``, or the best fold's bundle of a run folder (safe ``weights_only`` load).

        Raises:
            BundleError: not a bundle, or a folder without fold bundles.
        """
        checkpoint = resolve_checkpoint(path)
        return cls(load_bundle(checkpoint), checkpoint)

    @property
    def class_names(self) -> list[str]:
        return self.bundle.class_names

    @property
    def sample_rate(self) -> int:
        return self.bundle.audio.sample_rate

    @property
    def clip_seconds(self) -> float:
        return self.bundle.audio.duration

    @property
    def clip_samples(self) -> int:
        return self.bundle.audio.num_samples

    def load(self, path: str | Path) -> np.ndarray:
        """Decode a whole file to mono ``(samples,)`` at the bundle's rate.

        Raises:
            AudioDecodeError: missing, unreadable, empty or non-finite audio.
        """
        return load_audio(path, self.sample_rate, band_rate=self.bundle.audio.band_rate)

    def probabilities(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        """``N`` clip-length ``(clip_samples,)`` waveforms -> ``(N, num_classes)`` softmax probabilities.

        Runs in batches of ``BATCH_SIZE``, so a generator of many windows stays small in memory.
        """
        out = [torch.softmax(self.bundle.logits(torch.from_numpy(np.stack(batch))), dim=-1) for batch in batches(clips)]
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def top_k(self, probabilities: np.ndarray, k: int) -> list[ClassScore]:
        """The ``k`` most probable classes of one ``(num_classes,)`` row, best first (all if ``k`` is larger).

        Raises:
            ValueError: ``k`` < 1.
        """
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        order = np.argsort(-probabilities, kind="stable")[:k]
        return [ClassScore(self.class_names[i], float(probabilities[i])) for i in order]

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """Log-mel in dB ``(n_mels, frames)`` of a whole ``(samples,)`` waveform, for display."""
        with torch.no_grad():
            return self._display_logmel(torch.from_numpy(wave))[0, 0].numpy()

    def _to_model_rate(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        return resample(check_waveform(wave), sample_rate, self.sample_rate, self.bundle.audio.band_rate)

    def predict_wave(self, wave: np.ndarray, sample_rate: int, top_k: int = 3,
                     name: str = "<waveform>") -> Prediction:
        """Classify one clip (padded or cut to the clip length).

        Args:
            wave: mono ``(samples,)`` float waveform at ``sample_rate``.
            sample_rate: its rate in Hz (resampled to the bundle's).
            top_k: how many classes to return.
            name: what the result's ``file`` says.

        Raises:
            ValueError: empty, non-mono or non-finite waveform.
        """
        wave = self._to_model_rate(wave, sample_rate)
        return self.clip_prediction(self.probabilities([pad_or_trim(wave, self.clip_samples)])[0], len(wave), top_k,
                                    name)

    def clip_prediction(self, probabilities: np.ndarray, n_samples: int, top_k: int, name: str) -> Prediction:
        """The result for one clip from its ``(num_classes,)`` probabilities and length at the bundle's rate."""
        return Prediction(file=name, duration_s=n_samples / self.sample_rate,
                          top_k=self.top_k(probabilities, top_k))

    def window_samples(self, window_s: float | None = None, hop_s: float | None = None) -> tuple[int, int]:
        """Window and hop in samples; defaults: the clip length and half the window.

        Raises:
            WindowError: a window longer than the clip length, or a hop not in ``(0, window]``.
        """
        window_s = self.clip_seconds if window_s is None else window_s
        hop_s = window_s / 2 if hop_s is None else hop_s
        if not 0 < window_s <= self.clip_seconds:
            raise WindowError(f"window must be in (0, {self.clip_seconds:g}] s (the model's clip length), "
                              f"got {window_s:g} s")
        if not 0 < hop_s <= window_s:
            raise WindowError(f"hop must be in (0, window={window_s:g}] s so windows leave no gap, got {hop_s:g} s")
        return int(round(window_s * self.sample_rate)), max(1, int(round(hop_s * self.sample_rate)))

    def predict_long_wave(self, wave: np.ndarray, sample_rate: int, window_s: float | None = None,
                          hop_s: float | None = None, top_k: int = 3, name: str = "<waveform>") -> Prediction:
        """Classify a recording of any length with sliding windows.

        Windows start at 0 and every ``hop_s``; the last one reaches the end of the file and is
        zero-padded past it, as is every window shorter than the clip length. The result has
        each window's top classes, consecutive windows with the same top class merged into
        segments, and, as ``top_k``, the classes of the mean probability over the windows.

        Args:
            wave: mono ``(samples,)`` float waveform at ``sample_rate``.
            sample_rate: its rate in Hz.
            window_s: window length (default and maximum: the bundle's clip length).
            hop_s: step between window starts, at most ``window_s`` (default half the window).
            top_k: how many classes per window and for the file.
            name: what the result's ``file`` says.

        Raises:
            ValueError: bad waveform.
            WindowError: a window longer than the clip length, or a hop not in ``(0, window]``.
        """
        wave = self._to_model_rate(wave, sample_rate)
        window, hop = self.window_samples(window_s, hop_s)
        starts = window_starts(len(wave), window, hop)
        probs = self.probabilities(pad_or_trim(wave[s:s + window], self.clip_samples) for s in starts)
        rate, n = self.sample_rate, len(wave)
        windows = [Window(start_s=s / rate, end_s=min(s + window, n) / rate, top_k=self.top_k(p, top_k))
                   for s, p in zip(starts, probs, strict=True)]
        return Prediction(file=name, duration_s=n / rate, top_k=self.top_k(probs.mean(axis=0), top_k),
                          windows=windows, segments=merge_segments(windows, n / rate))

    def predict_file(self, path: str | Path, top_k: int = 3) -> Prediction:
        """Classify one file as one clip (see the class notes on padding and cutting).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
        """
        return self.predict_wave(self.load(path), self.sample_rate, top_k, str(path))

    def predict_long(self, path: str | Path, window_s: float | None = None, hop_s: float | None = None,
                     top_k: int = 3) -> Prediction:
        """Classify one file of any length with sliding windows (see :meth:`predict_long_wave`).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
        """
        return self.predict_long_wave(self.load(path), self.sample_rate, window_s, hop_s, top_k, str(path))
