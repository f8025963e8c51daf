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
