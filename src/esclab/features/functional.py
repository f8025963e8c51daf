"""Pure log-mel math in torch, matching ``librosa.power_to_db(librosa.feature.melspectrogram(...))``.

librosa conventions reproduced: centred frames with zero (``constant``) padding, a periodic
Hann window, power 2 magnitude, Slaney mel filterbank (``librosa.filters.mel``), and
``power_to_db`` with ``ref=max`` (per clip), ``amin=1e-10`` and an optional ``top_db`` floor.
"""

from __future__ import annotations

import librosa
import numpy as np
import torch
import torch.nn.functional as F

AMIN = 1e-10


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)`` from librosa."""
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(fb.astype(np.float32))


def mel_power(wave: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, n_fft: int,
              hop_length: int) -> torch.Tensor:
    """``(batch, samples)`` -> mel power ``(batch, n_mels, frames)``; frames = 1 + samples // hop."""
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[0], window=window,
                      center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return torch.matmul(filterbank, power)


def power_to_db(power: torch.Tensor, top_db: float | None = 80.0) -> torch.Tensor:
    """``10 log10(power / max)`` per example (ref=max over all but the batch dim), floored at ``-top_db``."""
    dims = tuple(range(1, power.ndim))
    db = 10.0 * torch.log10(power.clamp_min(AMIN))
    ref = 10.0 * torch.log10(power.amax(dim=dims, keepdim=True).clamp_min(AMIN))
    db = db - ref
    if top_db is not None:
        db = torch.maximum(db, db.amax(dim=dims, keepdim=True) - top_db)
    return db


def fix_frames(spec: torch.Tensor, frames: int | None, fill: float | None = None) -> torch.Tensor:
    """Trim or pad the last (time) axis to ``frames``; padding uses ``fill`` or each example's minimum."""
    if frames is None or spec.shape[-1] == frames:
        return spec
    if spec.shape[-1] > frames:
        return spec[..., :frames]
    extra = frames - spec.shape[-1]
    if fill is None:
        dims = tuple(range(1, spec.ndim))
        floor = spec.amin(dim=dims, keepdim=True)
        pad = floor.expand(*spec.shape[:-1], extra)
        return torch.cat([spec, pad], dim=-1)
    return F.pad(spec, (0, extra), value=fill)


def log_mel_spectrogram(wave: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, n_fft: int,
                        hop_length: int, top_db: float | None = 80.0, frames: int | None = None) -> torch.Tensor:
    """``(batch, samples)`` waveform -> ``(batch, 1, n_mels, frames)`` log-mel in dB."""
    db = power_to_db(mel_power(wave, window, filterbank, n_fft, hop_length), top_db)
    return fix_frames(db, frames).unsqueeze(1)


# --- Kaldi-style log-mel (EfficientAT / PaSST front end) -----------------------------------------------


def kaldi_mel_scale(freq: np.ndarray | float) -> np.ndarray | float:
    """Kaldi's mel scale ``1127 ln(1 + f / 700)`` (Hz -> mel)."""
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                         fmax: float | None = None) -> torch.Tensor:
    """Kaldi mel filterbank ``(n_mels, n_fft // 2 + 1)``: unnormalised triangles on the Kaldi mel scale.

    Band ``k`` rises from mel ``lo + k d`` to 1 at ``lo + (k + 1) d`` and falls to 0 at ``lo + (k + 2) d``,
    with ``d = (mel(fmax) - mel(fmin)) / (n_mels + 1)``, evaluated at the FFT bin frequencies
    ``i * sample_rate / n_fft`` for ``i < n_fft // 2``. The last (Nyquist) bin gets weight 0, as in Kaldi's
    ``get_mel_banks`` padded by one column (EfficientAT's ``AugmentMelSTFT``).

    Args:
        sample_rate: audio rate in Hz.
        n_fft: FFT size.
        n_mels: number of bands.
        fmin: lowest edge in Hz.
        fmax: highest edge in Hz (``None``: Nyquist).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got fmin={fmin}, fmax={fmax}")
    mel_lo, mel_hi = kaldi_mel_scale(fmin), kaldi_mel_scale(fmax)
    delta = (mel_hi - mel_lo) / (n_mels + 1)
    left = mel_lo + delta * np.arange(n_mels)[:, None]
    center, right = left + delta, left + 2 * delta
    mel = kaldi_mel_scale(np.arange(n_fft // 2) * sample_rate / n_fft)[None, :]
    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return torch.from_numpy(np.pad(bank, ((0, 0), (0, 1))).astype(np.float32))


def preemphasis(wave: torch.Tensor, coefficient: float = 0.97) -> torch.Tensor:
    """``y[n] = x[n] - c x[n-1]`` along the last axis, ``y[0] = x[0]``; same shape as ``wave``."""
    return torch.cat([wave[..., :1], wave[..., 1:] - coefficient * wave[..., :-1]], dim=-1)


def kaldi_log_mel(wave: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, n_fft: int,
                  hop_length: int, preemphasis_coefficient: float = 0.97, offset: float = 1e-5,
                  shift: float = 4.5, scale: float = 5.0, frames: int | None = None) -> torch.Tensor:
    """EfficientAT's front end: ``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``.

    Pre-emphasis, centred STFT with reflect padding, power, mel filterbank,
    ``ln(mel + offset)``, then the fixed scaling ``(x + shift) / scale``.
    """
    wave = preemphasis(wave, preemphasis_coefficient)
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[0], window=window,
                      center=True, pad_mode="reflect", return_complex=True)
    mel = torch.matmul(filterbank, spec.real.square() + spec.imag.square())
    logmel = (torch.log(mel + offset) + shift) / scale
    return fix_frames(logmel, frames).unsqueeze(1)
