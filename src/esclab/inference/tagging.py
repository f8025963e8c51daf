"""AudioSet tagging with no training: ``Tagger.from_name("efficientat:mn04_as").tag_file(path)``.

EfficientAT's AudioSet MobileNets score 527 AudioSet classes (names in
``esclab/resources/audioset_labels.csv``). Tagging is multi-label: every class gets its own
sigmoid probability of being present, so scores do not sum to 1 and several classes can be
near 1 at once ("Dog", "Bark", "Animal"). That differs from :class:`~esclab.inference.Predictor`,
whose single-label softmax probabilities do sum to 1; results say which they carry
(:attr:`Tags.scores`).

The network is fully convolutional with a global average pool, so a clip of any length goes
through it whole, unpadded: :meth:`Tagger.tag_wave` scores a recording of up to
``max_seconds`` (30 s) in one pass. Longer recordings are cut into consecutive
``max_seconds`` pieces and each class keeps its highest score over them (a sound heard in any
piece is in the recording), which bounds memory. :meth:`Tagger.tag_long` gives a timeline of
sliding windows instead.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from esclab.audio import AudioDecodeError, check_waveform, load_audio, pad_or_trim, resample
from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import build_frontend
from esclab.inference.batch import collect_audio_files
from esclab.inference.predictor import batches
from esclab.inference.results import (
    ClassScore,
    Prediction,
    Window,
    WindowError,
    merge_segments,
    window_starts,
)
from esclab.models import create_model, is_model, prepare_for_inference
from esclab.models.efficientat import AUDIOSET_CLASSES
from esclab.models.pretrained import load_pretrained
from esclab.weights import KNOWN_WEIGHTS, WeightsError, resolve_weights

DEFAULT_WEIGHTS = "efficientat:mn04_as"
_CONTRACT = KNOWN_WEIGHTS[DEFAULT_WEIGHTS]  # the weights state their rate and front end (esclab.weights)
SAMPLE_RATE = _CONTRACT.sample_rate
#: The weights' front end (``WeightsSpec.frontend``) with any number of frames.
FEATURES = FeatureConfig(**_CONTRACT.frontend, top_db=None, frames=None)
BATCH_SIZE = 16
SCORES = "sigmoid: each class's own probability of being present (multi-label; scores do not sum to 1)"


@dataclass
class Tags(Prediction):
    """A :class:`Prediction` whose ``probability`` values are independent sigmoid scores.

    ``scores`` says so in every record (and in ``--format json``); the CLI's table and CSV
    columns are named ``sigmoid_i``. For a long recording, a class's file score
    (``top_k``) is its highest window score.
    """

    scores: str = SCORES


@cache
def audioset_labels() -> tuple[str, ...]:
    """The 527 AudioSet display names, in the order of the taggers' outputs (package data)."""
    text = resources.files("esclab").joinpath("resources", "audioset_labels.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    if [int(r["index"]) for r in rows] != list(range(AUDIOSET_CLASSES)):
        raise RuntimeError(f"audioset_labels.csv must list indices 0..{AUDIOSET_CLASSES - 1} in order")
    return tuple(r["display_name"] for r in rows)


class Tagger:
    """An AudioSet tagger: front end, network and class names (see the module notes).

    Args:
        model: an EfficientAT MobileNet with the 527-class AudioSet head (put in eval mode).
        weights: the weights' name, for display.
        max_seconds: the longest audio scored in one pass, and the longest ``tag_long`` window.
    """

    def __init__(self, model: torch.nn.Module, weights: str = DEFAULT_WEIGHTS, max_seconds: float = 30.0):
        if getattr(model, "num_classes", None) != AUDIOSET_CLASSES:
            raise ValueError(f"a tagger needs a {AUDIOSET_CLASSES}-class AudioSet head, "
                             f"got {getattr(model, 'num_classes', None)} classes")
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        self.model = prepare_for_inference(model)  # same scores in less time; a tagger never trains or saves it
        self.weights = weights
        self.max_seconds = max_seconds
        self.frontend = build_frontend(AudioConfig(sample_rate=SAMPLE_RATE), FEATURES)
        self.class_names = list(audioset_labels())

    @classmethod
    def from_name(cls, name: str = DEFAULT_WEIGHTS, download: bool = True) -> Tagger:
        """Build the MobileNet of the weights' width (``mn04`` for 0.4, ``mn10`` for 1.0) and load them.

        Args:
            name: a key of :data:`esclab.weights.KNOWN_WEIGHTS`, e.g. ``"efficientat:mn10_as"``.
            download: whether weights found in no search folder may be downloaded.

        Raises:
            WeightsError: unknown name, weights not found or not downloadable, wrong checksum, or a
                file that does not fill the whole model.
        """
        resolved = resolve_weights(name, download=download)
        arch = resolved.spec.arch
        if (resolved.spec.sample_rate, resolved.spec.frontend) != (SAMPLE_RATE, _CONTRACT.frontend):
            raise WeightsError(f"{name}: trained at {resolved.spec.sample_rate} Hz on {resolved.spec.frontend}; "
                               f"the tagger runs {SAMPLE_RATE} Hz and {_CONTRACT.frontend}")
        if not is_model(arch):
            raise WeightsError(f"{name}: no registered model for width {resolved.spec.width_mult:g} ({arch})")
        model = create_model(arch, num_classes=AUDIOSET_CLASSES)
        report = load_pretrained(model, str(resolved.path))
        if report.skipped or report.missing:
            raise WeightsError(f"{name}: {resolved.path} does not fill {arch}: {len(report.skipped)} tensors "
                               f"skipped, {len(report.missing)} left at init")
        return cls(model, name)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def load(self, path: str | Path) -> np.ndarray:
        """Decode a whole file to mono ``(samples,)`` at 32 kHz.

        Raises:
            AudioDecodeError: missing, unreadable, empty or non-finite audio.
        """
        return load_audio(path, SAMPLE_RATE)

    def scores(self, clips: Iterable[np.ndarray]) -> np.ndarray:
        """``N`` equal-length ``(samples,)`` 32 kHz waveforms -> ``(N, 527)`` sigmoid scores, in batches."""
        out = []
        with torch.inference_mode():
            for batch in batches(clips, BATCH_SIZE):
                wave = torch.from_numpy(np.stack(batch))
                out.append(torch.sigmoid(self.model(self.frontend(wave))))
        return torch.cat(out).numpy()

    def top_k(self, scores: np.ndarray, k: int) -> list[ClassScore]:
        """The ``k`` highest-scoring classes of one ``(527,)`` row, best first."""
        order = np.argsort(-scores, kind="stable")[:k]
        return [ClassScore(self.class_names[i], float(scores[i])) for i in order]

    def window_samples(self, window_s: float = 5.0, hop_s: float | None = None) -> tuple[int, int]:
        """Window and hop in samples (hop default: half the window).

        Raises:
            WindowError: a window not in ``(0, max_seconds]``, or a hop not in ``(0, window]``.
        """
        hop_s = window_s / 2 if hop_s is None else hop_s
        if not 0 < window_s <= self.max_seconds:
            raise WindowError(f"window must be in (0, {self.max_seconds:g}] s, got {window_s:g} s")
        if not 0 < hop_s <= window_s:
            raise WindowError(f"hop must be in (0, window={window_s:g}] s so windows leave no gap, "
                              f"got {hop_s:g} s")
        return int(round(window_s * SAMPLE_RATE)), max(1, int(round(hop_s * SAMPLE_RATE)))

    def _prepare(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        wave = resample(check_waveform(wave), sample_rate, SAMPLE_RATE)
        return pad_or_trim(wave, max(len(wave), FEATURES.n_fft))  # the STFT's reflect padding needs this much

    @staticmethod
    def _starts(n_samples: int, window: int, hop: int) -> list[int]:
        """Window starts covering the recording with whole windows: the last one is moved back to end at the
        end (zero padding would dilute the global average pool). A recording shorter than a window is one
        window of its own length."""
        return [min(s, max(0, n_samples - window)) for s in window_starts(n_samples, window, hop)]

    def tag_wave(self, wave: np.ndarray, sample_rate: int, top_k: int = 5, name: str = "<waveform>") -> Tags:
        """Tag one recording whole (in ``max_seconds`` pieces, max-pooled, past that length).

        Args:
            wave: mono ``(samples,)`` float waveform at ``sample_rate``.
            sample_rate: its rate in Hz (resampled to 32 kHz).
            top_k: how many classes to return (all 527 if larger).
            name: what the result's ``file`` says.

        Raises:
            ValueError: empty, non-mono or non-finite waveform, or ``top_k`` < 1.
        """
        _check_top_k(top_k)
        wave = self._prepare(wave, sample_rate)
        piece = int(round(self.max_seconds * SAMPLE_RATE))
        scores = self.scores(wave[s:s + piece] for s in self._starts(len(wave), piece, piece)).max(axis=0)
        return Tags(file=name, duration_s=len(wave) / SAMPLE_RATE, top_k=self.top_k(scores, top_k))

    def tag_long_wave(self, wave: np.ndarray, sample_rate: int, window_s: float = 5.0,
                      hop_s: float | None = None, top_k: int = 5, name: str = "<waveform>") -> Tags:
        """A timeline of sliding windows, each with its top AudioSet classes.

        Windows start at 0 and every ``hop_s``; the last one ends at the end of the recording
        (see :meth:`_starts`). The result has each window's top classes, consecutive windows with
        the same top class merged into segments, and, as ``top_k``, each class's highest window score.

        Raises:
            ValueError: bad waveform or ``top_k`` < 1.
            WindowError: a window not in ``(0, max_seconds]``, or a hop not in ``(0, window]``.
        """
        _check_top_k(top_k)
        window, hop = self.window_samples(window_s, hop_s)
        wave = self._prepare(wave, sample_rate)
        n = len(wave)
        starts = self._starts(n, window, hop)
        scores = self.scores(wave[s:s + window] for s in starts)
        windows = [Window(start_s=s / SAMPLE_RATE, end_s=min(s + window, n) / SAMPLE_RATE,
                          top_k=self.top_k(p, top_k)) for s, p in zip(starts, scores, strict=True)]
        return Tags(file=name, duration_s=n / SAMPLE_RATE, top_k=self.top_k(scores.max(axis=0), top_k),
                    windows=windows, segments=merge_segments(windows, n / SAMPLE_RATE))

    def tag_file(self, path: str | Path, top_k: int = 5) -> Tags:
        """Tag one file whole (see :meth:`tag_wave`).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
        """
        return self.tag_wave(self.load(path), SAMPLE_RATE, top_k, str(path))

    def tag_long(self, path: str | Path, window_s: float = 5.0, hop_s: float | None = None,
                 top_k: int = 5) -> Tags:
        """Tag one file as a timeline of sliding windows (see :meth:`tag_long_wave`).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
            WindowError: bad window settings.
        """
        return self.tag_long_wave(self.load(path), SAMPLE_RATE, window_s, hop_s, top_k, str(path))


def _check_top_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")


def tag_paths(tagger: Tagger, paths: Iterable[str | Path], top_k: int = 5, long: bool = False,
              window_s: float = 5.0, hop_s: float | None = None) -> list[Tags]:
    """Tag every audio file under ``paths`` (folders searched recursively); bad files give error records.

    Args:
        tagger: the tagger to use.
        paths: files and folders.
        top_k: classes per file (and per window with ``long``).
        long: a timeline of sliding windows per file (:meth:`Tagger.tag_long_wave`) instead of one score set.
        window_s: window length for ``long``.
        hop_s: hop for ``long`` (default: half the window).

    Returns:
        One :class:`Tags` per file, in order; ``error`` set for the files that failed.

    Raises:
        WindowError: with ``long``, window settings that cannot work (checked before any file).
        ValueError: ``top_k`` < 1.
    """
    _check_top_k(top_k)
    if long:
        tagger.window_samples(window_s, hop_s)
    results = []
    for path in collect_audio_files(paths):
        try:
            wave = tagger.load(path)
        except AudioDecodeError as err:
            results.append(Tags.failed(path, err))
            continue
        if long:
            results.append(tagger.tag_long_wave(wave, SAMPLE_RATE, window_s, hop_s, top_k, str(path)))
        else:
            results.append(tagger.tag_wave(wave, SAMPLE_RATE, top_k, str(path)))
    return results
