"""Decoding, mono mix-down, resampling and fixed length: the only place that reads audio files.

soundfile (libsndfile) decodes wav, flac, ogg and mp3; soxr resamples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from esclab.config import DEFAULT_SAMPLE_RATE
from esclab.errors import EsclabError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class AudioDecodeError(EsclabError, RuntimeError):
    """A file could not be turned into a usable waveform; the message names the file and why."""


def pad_or_trim(wave: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or cut to exactly ``length`` samples. ``(samples,) -> (length,)``."""
    if wave.shape[-1] >= length:
        return wave[..., :length]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, length - wave.shape[-1])]
    return np.pad(wave, pad)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int, band_rate: int | None = None) -> np.ndarray:
    """Resample a mono ``(samples,)`` waveform with soxr (high quality).

    With ``band_rate`` below ``orig_sr``, the audio passes through that rate first, which keeps only
    the band under ``band_rate / 2`` (what a model trained on audio recorded at that rate has seen).
    """
    if band_rate is not None and band_rate < orig_sr:
        wave, orig_sr = resample(wave, orig_sr, band_rate), band_rate
    if orig_sr == target_sr:
        return wave
    return soxr.resample(wave, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def check_waveform(wave: np.ndarray) -> np.ndarray:
    """``wave`` as a float32 mono ``(samples,)`` array.

    Raises:
        ValueError: not one-dimensional, empty, or holding NaN or infinite samples.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1 or wave.size == 0:
        raise ValueError(f"expected a non-empty mono (samples,) waveform, got shape {wave.shape}")
    if not np.all(np.isfinite(wave)):
        raise ValueError("waveform contains NaN or infinite samples")
    return wave


def native_rate(path: str | Path) -> int:
    """The sample rate a file is stored at (header only).

    Raises:
        AudioDecodeError: missing or unreadable file.
    """
    try:
        return int(sf.info(str(path)).samplerate)
    except Exception as err:  # libsndfile raises several types for bad files
        raise AudioDecodeError(f"{path}: cannot read its header ({err})") from err


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a mono float32 ``(samples,)`` waveform at the rate it is stored at.

    Returns:
        The waveform (channels averaged) and the file's sample rate in Hz.

    Raises:
        AudioDecodeError: missing, unreadable, empty, or non-finite audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    try:
        data, orig_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types for bad files
        raise AudioDecodeError(f"{path}: cannot decode ({err})") from err
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: contains no samples")
    if not np.all(np.isfinite(data)):
        raise AudioDecodeError(f"{path}: contains NaN or infinite samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(wave, dtype=np.float32), int(orig_sr)


def conform(wave: np.ndarray, orig_sr: int, sample_rate: int = DEFAULT_SAMPLE_RATE, duration: float | None = None,
            band_rate: int | None = None) -> np.ndarray:
    """A mono waveform at ``orig_sr`` -> ``sample_rate`` (through ``band_rate``), padded or trimmed to ``duration`` s."""
    wave = resample(wave, orig_sr, sample_rate, band_rate)
    if duration is not None:
        wave = pad_or_trim(wave, int(round(duration * sample_rate)))
    return wave


def load_audio(path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE, duration: float | None = None,
               band_rate: int | None = None) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform at ``sample_rate``.

    Args:
        path: a wav, flac, ogg or mp3 file (any channel count and sample rate).
        sample_rate: output rate in Hz.
        duration: if given, pad with zeros or trim to exactly this many seconds.
        band_rate: pass the audio through this rate first when the file's rate is higher (see
            :func:`resample`).

    Returns:
        ``(samples,)`` float32 in [-1, 1] (as decoded).

    Raises:
        AudioDecodeError: missing, unreadable, empty, or non-finite audio.
    """
    wave, orig_sr = read_audio(path)
    return conform(wave, orig_sr, sample_rate, duration, band_rate)
