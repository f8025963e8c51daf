"""``Scorer``: a network and its front end applied to clips, files and long recordings.

One class serves both uses of a model, :class:`~esclab.inference.Predictor` (a trained bundle)
and :class:`~esclab.inference.Tagger` (AudioSet tags); its parameters state what differs:

- ``activation``: ``softmax`` (single-label: each class's probability, the scores sum to 1) or
  ``sigmoid`` (multi-label: each class's own probability of being present, several can be near 1).
- ``pooling``: how the scores of several inputs of one recording make its scores: ``mean`` or ``max``
  (a sound heard in any window is in the recording).
- ``inputs``: ``clip``, every input padded or cut to the clip length (a model trained on fixed-length
  clips): a recording scored as one clip is judged on its first clip, and sliding windows are
  zero-padded past its end. ``whole``, every input goes through at its own length up to the clip
  length (a fully convolutional model with a global pool, which zero padding would dilute): a
  recording scored as one clip is cut into consecutive clip-length pieces whose scores are pooled,
  and the last window (or piece) moves back to end where the recording ends.

Every record says which scores it carries (:attr:`Prediction.scores`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from itertools import groupby, islice, pairwise
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import nn

from esclab.audio import check_waveform, load_audio, pad_or_trim, resample
from esclab.calibration import UNKNOWN, check_threshold
from esclab.config import AudioConfig, FeatureConfig
from esclab.features.frontend import build_frontend
from esclab.inference.events import EVENT_HOP_S, EVENT_WINDOW_S, EventSettings, find_events, window_levels
from esclab.inference.results import (
    ClassScore,
    Prediction,
    Window,
    WindowError,
    merge_segments,
    window_starts,
)
from esclab.models import prepare_for_inference

Activation = Literal["softmax", "sigmoid"]
Pooling = Literal["mean", "max"]
Inputs = Literal["clip", "whole"]
T = TypeVar("T")

BATCH_SIZE = 32
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": partial(torch.softmax, dim=-1), "sigmoid": torch.sigmoid}
_POOLINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "mean": partial(np.mean, axis=0), "max": partial(np.max, axis=0)}
_INPUTS = ("clip", "whole")
#: What each activation's scores are; every record carries its scorer's (``Prediction.scores``).
SCORE_NOTES = {
    "softmax": "softmax: each class's probability (single-label; scores sum to 1)",
    "sigmoid": "sigmoid: each class's own probability of being present (multi-label; scores do not sum to 1)",
}
#: The name of the score columns of the table and CSV formats, per activation.
SCORE_COLUMNS = {"softmax": "probability", "sigmoid": "sigmoid"}


def batches(items: Iterable[T], size: int = BATCH_SIZE) -> Iterator[list[T]]:
    """Consecutive lists of at most ``size`` items, so a generator of many windows stays small in memory."""
    items = iter(items)
    while batch := list(islice(items, size)):
        yield batch


def _check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


class Scorer:
    """A network and its front end applied to audio (see the module notes for the parameters).

    Args:
        model: ``(batch, 1, n_mels, frames)`` spectrogram -> ``(batch, num_classes)`` logits. A copy of it is
            prepared for inference (eval mode, BatchNorms folded into the convolutions before them,
            channels-last: the same scores in about half the CPU time); the caller's model is left as it was.
        frontend: ``(batch, samples)`` waveform at ``audio.sample_rate`` -> the model's input.
        class_names: the model's classes, in the order of its outputs.
        audio: the rate inputs are brought to (through ``band_rate`` when set) and, as ``duration``, the clip
            length: the longest input, and the longest sliding window.
        features: the front end's settings, for the display spectrogram (any number of frames) and the
            shortest input a ``whole`` scorer passes (``n_fft`` samples).
        activation: ``softmax`` or ``sigmoid``.
        pooling: ``mean`` or ``max``.
        inputs: ``clip`` or ``whole``.
        batch_size: inputs per forward pass.
        reject_below: the rejection rule (:mod:`esclab.calibration`): a clip or window whose best score is
            below it is answered :data:`~esclab.calibration.UNKNOWN` (its ``top_k`` starts with an
            ``unknown`` entry carrying that best score, then the known classes; ``unknown`` is true).
            ``None`` or 0: never.

    Raises:
        ValueError: an unknown ``activation``, ``pooling`` or ``inputs``, or a threshold outside ``[0, 1]``.
    """

    #: Classes per result when a call names none.
    default_top_k = 3
    #: Sliding-window length when a call names none (``None``: the clip length).
    default_window_s: float | None = None

    def __init__(self, model: nn.Module, frontend: nn.Module, class_names: Sequence[str], audio: AudioConfig,
                 features: FeatureConfig, *, activation: Activation = "softmax", pooling: Pooling = "mean",
                 inputs: Inputs = "clip", batch_size: int = BATCH_SIZE, reject_below: float | None = None):
        _check_choice("activation", activation, _ACTIVATIONS)
        _check_choice("pooling", pooling, _POOLINGS)
        _check_choice("inputs", inputs, _INPUTS)
        self.model = prepare_for_inference(copy.deepcopy(model))
        self.frontend = frontend
        self.class_names = list(class_names)
        self.audio, self.features = audio, features
        self.activation, self.pooling, self.inputs, self.batch_size = activation, pooling, inputs, batch_size
        self.reject_below = None if reject_below is None else check_threshold(reject_below)
        self._display_logmel = build_frontend(audio, replace(features, frames=None))

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def clip_seconds(self) -> float:
        return self.audio.duration

    @property
    def clip_samples(self) -> int:
        return self.audio.num_samples

    @property
    def score_note(self) -> str:
        """What the scores are (:data:`SCORE_NOTES`)."""
        return SCORE_NOTES[self.activation]

    @property
    def score_column(self) -> str:
        """The score columns' name in tables and CSV (:data:`SCORE_COLUMNS`)."""
        return SCORE_COLUMNS[self.activation]

    def load(self, path: str | Path) -> np.ndarray:
        """Decode a whole file to mono ``(samples,)`` at the scorer's rate.

        Raises:
            AudioDecodeError: missing, unreadable, empty or non-finite audio.
        """
        return load_audio(path, self.sample_rate, band_rate=self.audio.band_rate)

    def scores(self, inputs: Iterable[np.ndarray]) -> np.ndarray:
        """``N`` ``(samples,)`` waveforms at the scorer's rate -> ``(N, num_classes)`` activations.

        Consecutive inputs of the same length go through together, ``batch_size`` at a time, so a
        generator of many windows stays small in memory.
        """
        out = []
        with torch.inference_mode():
            for _, run in groupby(inputs, key=len):
                for batch in batches(run, self.batch_size):
                    logits = self.model(self.frontend(torch.from_numpy(np.stack(batch))))
                    out.append(_ACTIVATIONS[self.activation](logits))
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.class_names)), np.float32)

    def top_k(self, scores: np.ndarray, k: int) -> list[ClassScore]:
        """The ``k`` best-scoring classes of one ``(num_classes,)`` row, best first (all if ``k`` is larger).

        Raises:
            ValueError: ``k`` < 1.
        """
        order = np.argsort(-scores, kind="stable")[:self.resolve_top_k(k)]
        return [ClassScore(self.class_names[i], float(scores[i])) for i in order]

    def is_unknown(self, scores: np.ndarray) -> bool:
        """Whether the rejection rule answers ``unknown`` for one ``(num_classes,)`` row."""
        return self.reject_below is not None and float(np.max(scores)) < self.reject_below

    def decide(self, scores: np.ndarray, k: int) -> tuple[list[ClassScore], bool]:
        """The ``k`` best classes of one row, preceded by an ``unknown`` entry (its score: the best class's)
        when the rejection rule turns the row away; and whether it did."""
        ranked = self.top_k(scores, k)
        if not self.is_unknown(scores):
            return ranked, False
        return [ClassScore(UNKNOWN, ranked[0].score), *ranked], True

    def resolve_top_k(self, k: int | None) -> int:
        """``k``, or :attr:`default_top_k` for ``None``.

        Raises:
            ValueError: ``k`` < 1.
        """
        k = self.default_top_k if k is None else k
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        return k

    def spectrogram(self, wave: np.ndarray) -> np.ndarray:
        """The front end's log-mel ``(n_mels, frames)`` of a whole ``(samples,)`` waveform, for display."""
        with torch.no_grad():
            return self._display_logmel(torch.from_numpy(wave))[0, 0].numpy()

    def window_samples(self, window_s: float | None = None, hop_s: float | None = None) -> tuple[int, int]:
        """Window and hop in samples; defaults: :attr:`default_window_s` and half the window.

        Raises:
            WindowError: a window not in ``(0, clip length]``, or a hop not in ``(0, window]``.
        """
        if window_s is None:
            window_s = self.clip_seconds if self.default_window_s is None else self.default_window_s
        hop_s = window_s / 2 if hop_s is None else hop_s
        if not 0 < window_s <= self.clip_seconds:
            raise WindowError(f"window must be in (0, {self.clip_seconds:g}] s (the model's clip length), "
                              f"got {window_s:g} s")
        if not 0 < hop_s <= window_s:
            raise WindowError(f"hop must be in (0, window={window_s:g}] s so windows leave no gap, got {hop_s:g} s")
        return int(round(window_s * self.sample_rate)), max(1, int(round(hop_s * self.sample_rate)))

    def _to_model_rate(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        return resample(check_waveform(wave), sample_rate, self.sample_rate, self.audio.band_rate)

    def _starts(self, n_samples: int, window: int, hop: int) -> list[int]:
        """Window starts covering a recording; ``whole`` inputs move the last one back to end at its end."""
        starts = window_starts(n_samples, window, hop)
        if self.inputs == "clip":
            return starts
        return [min(s, max(0, n_samples - window)) for s in starts]

    def _input(self, wave: np.ndarray, start: int, length: int) -> np.ndarray:
        """The model input for ``wave[start:start + length]``."""
        piece = wave[start:start + length]
        if self.inputs == "clip":
            return pad_or_trim(piece, self.clip_samples)
        return pad_or_trim(piece, max(len(piece), self.features.n_fft))  # the STFT's reflect padding needs this

    def clip_inputs(self, wave: np.ndarray) -> list[np.ndarray]:
        """The inputs that score ``(samples,)`` ``wave`` (at the scorer's rate) as one clip (see the module notes)."""
        n = self.clip_samples
        starts = self._starts(len(wave), n, n) if self.inputs == "whole" else [0]
        return [self._input(wave, s, n) for s in starts]

    def pooled_scores(self, waves: Iterable[np.ndarray]) -> np.ndarray:
        """``N`` recordings at the scorer's rate, each scored as one clip -> ``(N, num_classes)``.

        The inputs of all of them go through in shared batches and each recording's rows are pooled.
        ``waves`` is read as the batches fill, so a generator of decoded files keeps about one batch
        of audio in memory whatever their lengths.
        """
        counts: list[int] = []

        def inputs() -> Iterator[np.ndarray]:
            for wave in waves:
                pieces = self.clip_inputs(wave)
                counts.append(len(pieces))
                yield from pieces

        rows = self.scores(inputs())
        pool = _POOLINGS[self.pooling]
        pooled = [pool(rows[a:b]) for a, b in pairwise(np.cumsum([0, *counts]))]
        return np.stack(pooled) if pooled else rows

    def clip_prediction(self, scores: np.ndarray, n_samples: int, top_k: int, name: str) -> Prediction:
        """The result for one clip from its ``(num_classes,)`` scores and its length at the scorer's rate."""
        ranked, unknown = self.decide(scores, top_k)
        return Prediction(file=name, duration_s=n_samples / self.sample_rate, top_k=ranked, scores=self.score_note,
                          unknown=unknown, reject_below=self.reject_below)

    def predict_wave(self, wave: np.ndarray, sample_rate: int, top_k: int | None = None,
                     name: str = "<waveform>") -> Prediction:
        """Score one recording as one clip (see ``inputs`` in the module notes).

        Args:
            wave: mono ``(samples,)`` float waveform at ``sample_rate``.
            sample_rate: its rate in Hz (resampled to the scorer's).
            top_k: how many classes to return (default :attr:`default_top_k`; all if larger).
            name: what the result's ``file`` says.

        Raises:
            ValueError: empty, non-mono or non-finite waveform, or ``top_k`` < 1.
        """
        top_k = self.resolve_top_k(top_k)
        wave = self._to_model_rate(wave, sample_rate)
        return self.clip_prediction(self.pooled_scores([wave])[0], len(wave), top_k, name)

    def predict_long_wave(self, wave: np.ndarray, sample_rate: int, window_s: float | None = None,
                          hop_s: float | None = None, top_k: int | None = None,
                          name: str = "<waveform>") -> Prediction:
        """Score a recording of any length with sliding windows.

        Windows start at 0 and every ``hop_s``; the last one reaches the end of the recording (see
        ``inputs`` in the module notes). The result has each window's top classes, consecutive
        windows with the same top class merged into segments, and, as ``top_k``, the classes of the
        window scores pooled (``pooling``).

        Args:
            wave: mono ``(samples,)`` float waveform at ``sample_rate``.
            sample_rate: its rate in Hz.
            window_s: window length (default :attr:`default_window_s`, at most the clip length).
            hop_s: step between window starts, at most ``window_s`` (default half the window).
            top_k: how many classes per window and for the recording (default :attr:`default_top_k`).
            name: what the result's ``file`` says.

        Raises:
            ValueError: bad waveform, or ``top_k`` < 1.
            WindowError: a window longer than the clip length, or a hop not in ``(0, window]``.
        """
        top_k = self.resolve_top_k(top_k)
        window, hop = self.window_samples(window_s, hop_s)
        wave = self._to_model_rate(wave, sample_rate)
        starts, scores = self.window_scores(wave, window, hop)
        return self.long_prediction(starts, scores, window, len(wave), top_k, name)

    def event_window_samples(self, window_s: float | None = None, hop_s: float | None = None) -> tuple[int, int]:
        """:meth:`window_samples` for events: defaults :data:`~esclab.inference.events.EVENT_WINDOW_S` (at most the
        clip length) and :data:`~esclab.inference.events.EVENT_HOP_S` (at most the window).

        Raises:
            WindowError: a window not in ``(0, clip length]``, or a hop not in ``(0, window]``.
        """
        window_s = min(EVENT_WINDOW_S, self.clip_seconds) if window_s is None else window_s
        return self.window_samples(window_s, min(EVENT_HOP_S, window_s) if hop_s is None else hop_s)

    def detect_events(self, wave: np.ndarray, sample_rate: int, window_s: float | None = None,
                      hop_s: float | None = None, settings: EventSettings | None = None, top_k: int | None = None,
                      name: str = "<waveform>") -> Prediction:
        """Score a recording with sliding windows (as :meth:`predict_long_wave`) and find its sound events.

        The result is :meth:`predict_long_wave`'s with ``events`` filled by
        :func:`~esclab.inference.events.find_events` from the windows' scores and levels and the rejection rule.

        The arguments and errors are :meth:`predict_long_wave`'s, except the defaults of ``window_s`` and
        ``hop_s`` (:meth:`event_window_samples`), plus ``settings``: smoothing, level gate, merge gap and
        minimum duration (default ``EventSettings()``).
        """
        top_k = self.resolve_top_k(top_k)
        window, hop = self.event_window_samples(window_s, hop_s)
        wave = self._to_model_rate(wave, sample_rate)
        starts, scores = self.window_scores(wave, window, hop)
        result = self.long_prediction(starts, scores, window, len(wave), top_k, name)
        result.events = find_events(scores, [w.start_s for w in result.windows], [w.end_s for w in result.windows],
                                    window_levels(wave, starts, window), self.class_names, settings, self.is_unknown)
        return result

    def window_scores(self, wave: np.ndarray, window: int, hop: int) -> tuple[list[int], np.ndarray]:
        """Sliding windows of ``window`` samples every ``hop`` over ``(samples,)`` ``wave`` at the scorer's rate:
        their start samples and their ``(N, num_classes)`` scores."""
        starts = self._starts(len(wave), window, hop)
        return starts, self.scores(self._input(wave, s, window) for s in starts)

    def long_prediction(self, starts: list[int], scores: np.ndarray, window: int, n_samples: int, top_k: int,
                        name: str) -> Prediction:
        """The result for a long recording of ``n_samples`` from its windows' starts and scores
        (:meth:`window_scores`): each window's top classes, the merged segments and the pooled top classes."""
        rate = self.sample_rate
        windows = [Window(s / rate, min(s + window, n_samples) / rate, *self.decide(row, top_k))
                   for s, row in zip(starts, scores, strict=True)]
        ranked, unknown = self.decide(_POOLINGS[self.pooling](scores), top_k)
        return Prediction(file=name, duration_s=n_samples / rate, top_k=ranked, windows=windows,
                          segments=merge_segments(windows, n_samples / rate), scores=self.score_note,
                          unknown=unknown, reject_below=self.reject_below)

    def predict_file(self, path: str | Path, top_k: int | None = None) -> Prediction:
        """Score one file as one clip (see :meth:`predict_wave`).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
        """
        return self.predict_wave(self.load(path), self.sample_rate, top_k, str(path))

    def predict_long(self, path: str | Path, window_s: float | None = None, hop_s: float | None = None,
                     top_k: int | None = None) -> Prediction:
        """Score one file of any length with sliding windows (see :meth:`predict_long_wave`).

        Raises:
            AudioDecodeError: the file cannot be decoded into usable audio.
            WindowError: bad window settings.
        """
        return self.predict_long_wave(self.load(path), self.sample_rate, window_s, hop_s, top_k, str(path))
