"""``esclab.pipeline(RUN_OR_BUNDLE)``: a trained model as one callable, called the way Hugging Face's
audio-classification pipeline is (``transformers.AudioClassificationPipeline``)::

    classify = esclab.pipeline("runs/my_sounds")   # a run folder (its best fold) or a bundle file
    classify("dog.wav")   # [{"label": "dog", "score": 0.97}, {"label": "rooster", "score": 0.01}, ...]

Inputs, as there: a path; a ``{"array" or "raw": waveform, "sampling_rate": Hz}`` dict (what a
``datasets`` ``Audio`` column holds); a mono waveform with ``sampling_rate=`` given to the call, or as a
``(waveform, Hz)`` pair (what ``soundfile.read`` and ``librosa.load`` return); a list of these gives a list
of results. Unlike there, a bare waveform is never assumed to be at the model's rate: without its rate it is
refused. Every input goes through what :class:`~esclab.inference.Predictor` does for ``esclab predict``:
mono, the model's rate (through the training data's band), padded or cut to the clip length (a longer
recording is judged on its first clip), calibrated scores and the rejection rule (``unknown`` first when
the best score is below the threshold).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from esclab.audio import AudioDecodeError, check_waveform, resample
from esclab.errors import EsclabError
from esclab.inference.predictor import Predictor

#: One classification: ``{"label": str, "score": float}``, best first.
Record = dict[str, Any]
Errors = Literal["raise", "record"]


class PipelineInputError(EsclabError, ValueError):
    """An input the pipeline cannot read as audio; the message says what it got and what to pass instead."""


class AudioClassificationPipeline:
    """A trained esclab model called like Hugging Face's audio-classification pipeline (see the module notes).

    Args:
        predictor: the model (:meth:`Predictor.from_checkpoint`).
        top_k: classes per result (``None``: every class).

    Example (an untrained two-class bundle; ``esclab cv`` writes one per fold):
        >>> import tempfile
        >>> from esclab.bundle import save_bundle
        >>> from esclab.config import AudioConfig, FeatureConfig
        >>> from esclab.models import create_model
        >>> features = FeatureConfig(n_mels=32, n_fft=256, hop_length=128, frames=63)
        >>> options = {"channels": [4, 8, 8], "dense_units": [8]}
        >>> model = create_model("paper_cnn_gap", num_classes=2, input_size=features.input_size, **options)
        >>> path = save_bundle(Path(tempfile.mkdtemp()) / "model.ckpt", model, "paper_cnn_gap", options,
        ...                    ["dog", "rain"], AudioConfig(sample_rate=8000, duration=1.0), features)
        >>> classify = pipeline(path)
        >>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)  # 1 s at 16 kHz
        >>> result = classify(tone, sampling_rate=16000)
        >>> sorted(r["label"] for r in result), round(sum(r["score"] for r in result), 4)
        (['dog', 'rain'], 1.0)
        >>> len(classify([{"array": tone, "sampling_rate": 16000}, "missing.wav"]))
        2
    """

    def __init__(self, predictor: Predictor, top_k: int | None = 5):
        self.predictor = predictor
        self.top_k = self._check_top_k(top_k)

    @property
    def class_names(self) -> list[str]:
        return self.predictor.class_names

    @property
    def sample_rate(self) -> int:
        """The model's rate; inputs at any other rate are resampled to it."""
        return self.predictor.sample_rate

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(checkpoint={str(self.predictor.checkpoint)!r}, "
                f"classes={len(self.class_names)}, sample_rate={self.sample_rate}, top_k={self.top_k})")

    def __call__(self, inputs: Any, top_k: int | None = None, sampling_rate: int | None = None,
                 errors: Errors | None = None) -> list[Record] | list[list[Record]]:
        """Classify one input, or each input of a list.

        Args:
            inputs: a path (``str`` or ``os.PathLike``); a ``{"array" or "raw": waveform, "sampling_rate": Hz}``
                dict; a mono ``(samples,)`` waveform (numpy array or tensor; float, or integer PCM, scaled to
                [-1, 1]) with ``sampling_rate``; a ``(waveform, Hz)`` tuple; or a list of these.
            top_k: classes per result (default: the pipeline's; all if larger than the number of classes).
            sampling_rate: the rate of bare waveforms, in Hz (dicts and tuples carry their own).
            errors: what a bad input gives: ``"raise"`` (an :class:`~esclab.errors.EsclabError`: an
                ``AudioDecodeError`` for a file that cannot be decoded, as ``esclab predict`` reports it, a
                :class:`PipelineInputError` for anything else) or ``"record"`` (its result is
                ``[{"label": None, "score": None, "error": reason}]``, like ``predict``'s error row). Default:
                ``"raise"`` for one input, ``"record"`` for a list, so one bad file does not cost a batch its
                other results.

        Returns:
            For one input ``[{"label": str, "score": float}, ...]``, best first; for a list, one such list per
            input, in order. When the rejection rule turns a clip away, its first record is
            ``{"label": "unknown", "score": <best score>}``, followed by the ``top_k`` known classes.

        Raises:
            AudioDecodeError: (``errors="raise"``) a file that is missing or does not decode to usable audio.
            PipelineInputError: (``errors="raise"``) a waveform without its rate, one that is not mono or not
                finite, a dict without a waveform or rate, or an input of another type; ``errors`` or ``top_k``
                out of range (always).
        """
        k = self.top_k if top_k is None else self._check_top_k(top_k)
        if errors not in (None, "raise", "record"):
            raise PipelineInputError(f"errors must be 'raise' or 'record', got {errors!r}")
        if isinstance(inputs, list):
            return self._classify(inputs, k, sampling_rate, errors or "record")
        return self._classify([inputs], k, sampling_rate, errors or "raise")[0]

    def _check_top_k(self, top_k: int | None) -> int:
        if top_k is None:
            return len(self.class_names)
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
            raise PipelineInputError(f"top_k must be a whole number >= 1 (or None: every class), got {top_k!r}")
        return int(top_k)

    def _classify(self, inputs: Sequence[Any], top_k: int, sampling_rate: int | None,
                  errors: Errors) -> list[list[Record]]:
        """Decode the inputs one at a time and score the good ones in shared forward passes."""
        outcomes: list[EsclabError | None] = []

        def waves() -> Iterator[np.ndarray]:
            for item in inputs:
                try:
                    wave = self._waveform(item, sampling_rate)
                except (AudioDecodeError, PipelineInputError) as err:
                    if errors == "raise":
                        raise
                    outcomes.append(err)
                    continue
                outcomes.append(None)
                yield wave

        rows = iter(self.predictor.pooled_scores(waves()))
        return [self._records(next(rows), top_k) if err is None else [{"label": None, "score": None, "error": str(err)}]
                for err in outcomes]

    def _records(self, scores: np.ndarray, top_k: int) -> list[Record]:
        ranked, _ = self.predictor.decide(scores, top_k)
        return [{"label": s.label, "score": s.score} for s in ranked]

    def _waveform(self, item: Any, sampling_rate: int | None) -> np.ndarray:
        """One input as a mono waveform at the model's rate.

        Raises:
            AudioDecodeError: a file that cannot be decoded.
            PipelineInputError: anything else that is not usable audio.
        """
        if isinstance(item, str | os.PathLike):
            return self.predictor.load(Path(item))
        if isinstance(item, dict):
            key = next((k for k in ("array", "raw") if k in item), None)
            if key is None or "sampling_rate" not in item:
                raise PipelineInputError(f"a dict input needs 'array' (or 'raw') and 'sampling_rate', got keys "
                                         f"{sorted(map(str, item))}")
            return self._conform(item[key], item["sampling_rate"])
        if isinstance(item, tuple):
            if len(item) != 2 or isinstance(item[1], tuple | list | dict | str) or not hasattr(item[0], "__len__"):
                raise PipelineInputError("a tuple input is (waveform, sampling_rate); pass several inputs as a list")
            return self._conform(*item)
        if isinstance(item, bytes | bytearray):
            raise PipelineInputError("bytes are not read: pass the path of the file they came from, or decode them "
                                     "and pass {'array': waveform, 'sampling_rate': Hz}")
        if hasattr(item, "__array__"):
            if sampling_rate is None:
                raise PipelineInputError(f"a waveform needs its sample rate: call with sampling_rate=HZ, or pass "
                                         f"{{'array': waveform, 'sampling_rate': HZ}} (the model's rate is "
                                         f"{self.sample_rate} Hz; nothing is assumed)")
            return self._conform(item, sampling_rate)
        raise PipelineInputError(f"cannot classify a {type(item).__name__}: pass a path, a waveform with its "
                                 "sampling_rate, a {'array', 'sampling_rate'} dict, or a list of these")

    def _conform(self, wave: Any, sampling_rate: Any) -> np.ndarray:
        """A waveform at ``sampling_rate`` -> mono float32 at the model's rate (through the training data's band)."""
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int | np.integer) or sampling_rate <= 0:
            raise PipelineInputError(f"sampling_rate must be a whole number of Hz > 0, got {sampling_rate!r}")
        try:
            wave = check_waveform(_to_numpy(wave))
        except (TypeError, ValueError) as err:
            raise PipelineInputError(f"not a usable waveform: {err}") from err
        return resample(wave, int(sampling_rate), self.sample_rate, self.predictor.audio.band_rate)


def _to_numpy(wave: Any) -> np.ndarray:
    """A numpy array or a tensor (moved to the CPU) as a numpy array; integer PCM (``int16``, ``int32``, as
    ``scipy.io.wavfile`` reads it) scaled to [-1, 1] like a decoded file."""
    if hasattr(wave, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave)
    if np.issubdtype(wave.dtype, np.signedinteger):
        return wave.astype(np.float32) / -np.iinfo(wave.dtype).min
    return wave


def pipeline(checkpoint: str | Path, top_k: int | None = 5,
             reject_below: float | None = None) -> AudioClassificationPipeline:
    """A trained model as a callable that takes paths or waveforms and returns ``[{"label", "score"}, ...]``.

    Args:
        checkpoint: a run folder (its best fold's bundle) or a bundle file.
        top_k: classes per result (default 5, as Hugging Face's; ``None``: every class).
        reject_below: the rejection threshold (``None``: the bundle's own; 0: never answer ``unknown``).

    Raises:
        BundleError: not a bundle, or a folder without fold bundles.
    """
    return AudioClassificationPipeline(Predictor.from_checkpoint(checkpoint, reject_below), top_k)
