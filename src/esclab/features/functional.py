"""Pure log-mel math in torch, matching ``librosa.power_to_db(librosa.feature.melspectrogram(...))``.

librosa conventions reproduced: centred frames with zero (``constant``) padding, a periodic
Hann window, power 2 magnitude, Slaney mel filterbank (``librosa.filters.mel``), and
``power_to_db`` with ``ref=max`` (per clip), ``amin=1e-10`` and an optional ``top_db`` floor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

AMIN = 1e-10


# Slaney's mel scale (Auditory Toolbox, librosa's default): linear below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL  # 15
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def slaney_hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Hz -> Slaney mel (``librosa.hz_to_mel(htk=False)``)."""
    freq = np.asarray(freq, dtype=np.float64)
    above = _SLANEY_BREAK_MEL + np.log(np.maximum(freq, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(freq >= _SLANEY_BREAK_HZ, above, freq / _SLANEY_HZ_PER_MEL)


def slaney_mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Slaney mel -> Hz, the inverse of :func:`slaney_hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    above = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(mel, _SLANEY_BREAK_MEL) - _SLANEY_BREAK_MEL))
    return np.where(mel >= _SLANEY_BREAK_MEL, above, mel * _SLANEY_HZ_PER_MEL)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)``, equal to ``librosa.filters.mel``'s default.

    Band ``k`` is a triangle over the FFT bin frequencies between the mel-spaced edges ``k`` and ``k + 2``
    (``n_mels + 2`` edges evenly spaced on the Slaney scale from ``fmin`` to ``fmax``), peaking at edge
    ``k + 1``, scaled by ``2 / (f[k + 2] - f[k])`` so every band has unit area. Computed here with numpy
    (not librosa, whose import costs more than a second of every command's start-up).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    edges = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(fmin), slaney_hz_to_mel(fmax), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft)
    widths = np.diff(edges)
    rising = (bins[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / widths[1:, None]
    bank = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(bank.astype(np.float32))


Blocks = tuple[tuple[int, int, int, int], ...]  # (first band, last band + 1, first bin, last bin + 1) per block


def filterbank_blocks(filterbank: torch.Tensor, n_blocks: int = 8) -> Blocks:
    """Split a banded filterbank ``(n_mels, n_bins)`` into ``n_blocks`` runs of consecutive bands, each with
    the range of bins where any of its bands is non-zero.

    Mel triangles overlap only their neighbours, so a few blocks cover a small part of the matrix (about
    1/8 with 8 blocks for 128 Slaney mels); :func:`apply_filterbank` multiplies only those blocks.
    """
    nonzero = filterbank != 0
    rows = torch.arange(filterbank.shape[0])
    first_bin = torch.where(nonzero.any(dim=1), nonzero.float().argmax(dim=1), filterbank.shape[1])
    last_bin = torch.where(nonzero.any(dim=1), filterbank.shape[1] - nonzero.flip(1).float().argmax(dim=1), 0)
    blocks = []
    for band_rows in torch.tensor_split(rows, min(n_blocks, len(rows))):
        lo, hi = int(first_bin[band_rows].min()), int(last_bin[band_rows].max())
        blocks.append((int(band_rows[0]), int(band_rows[-1]) + 1, lo, max(lo, hi)))
    return tuple(blocks)


def apply_filterbank(filterbank: torch.Tensor, power: torch.Tensor, blocks: Blocks | None = None) -> torch.Tensor:
    """``filterbank @ power`` for ``power`` ``(..., n_bins, frames)``, multiplying only ``blocks`` when given
    (see :func:`filterbank_blocks`; the zeros outside them add nothing)."""
    if blocks is None:
        return torch.matmul(filterbank, power)
    parts = [torch.matmul(filterbank[r0:r1, c0:c1], power[..., c0:c1, :]) for r0, r1, c0, c1 in blocks]
    return torch.cat(parts, dim=-2)


def power_spectrum(wave: torch.Tensor, window: torch.Tensor, n_fft: int, hop_length: int,
                   pad_mode: str = "constant") -> torch.Tensor:
    """``(batch, samples)`` -> ``|STFT|^2`` ``(batch, n_fft // 2 + 1, frames)`` of centred frames."""
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[0], window=window,
                      center=True, pad_mode=pad_mode, return_complex=True)
    return spec.real.square() + spec.imag.square()


def mel_power(wave: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, n_fft: int,
              hop_length: int, blocks: Blocks | None = None) -> torch.Tensor:
    """``(batch, samples)`` -> mel power ``(batch, n_mels, frames)``; frames = 1 + samples // hop."""
    return apply_filterbank(filterbank, power_spectrum(wave, window, n_fft, hop_length), blocks)


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
                        hop_length: int, top_db: float | None = 80.0, frames: int | None = None,
                        blocks: Blocks | None = None) -> torch.Tensor:
    """``(batch, samples)`` waveform -> ``(batch, 1, n_mels, frames)`` log-mel in dB."""
    db = power_to_db(mel_power(wave, window, filterbank, n_fft, hop_length, blocks), top_db)
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
    """``y[n] = x[n + 1] - c x[n]`` along the last axis: a *valid* convolution with ``[-c, 1]``, one sample
    shorter than ``wave`` (EfficientAT's ``conv1d`` pre-emphasis; no first sample is kept)."""
    return wave[..., 1:] - coefficient * wave[..., :-1]


def kaldi_log_mel(wave: torch.Tensor, window: torch.Tensor, filterbank: torch.Tensor, n_fft: int,
                  hop_length: int, preemphasis_coefficient: float = 0.97, offset: float = 1e-5,
                  shift: float = 4.5, scale: float = 5.0, frames: int | None = None,
                  blocks: Blocks | None = None) -> torch.Tensor:
    """EfficientAT's front end: ``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``.

    Pre-emphasis (a valid convolution: ``samples - 1`` samples), centred STFT with reflect padding, power,
    mel filterbank, ``ln(mel + offset)``, then the fixed scaling ``(x + shift) / scale``: ``1 + (samples - 1)
    // hop`` frames (500 for 5 s at 32 kHz, hop 320).
    """
    wave = preemphasis(wave, preemphasis_coefficient)
    power = power_spectrum(wave, window, n_fft, hop_length, pad_mode="reflect")
    mel = apply_filterbank(filterbank, power, blocks)
    logmel = (torch.log(mel + offset) + shift) / scale
    return fix_frames(logmel, frames).unsqueeze(1)


def kaldi_log_to_power(logmel: torch.Tensor, offset: float = 1e-5, shift: float = 4.5,
                       scale: float = 5.0) -> torch.Tensor:
    """The mel power behind a :func:`kaldi_log_mel` value: ``exp(scale x - shift) - offset`` (>= 0)."""
    return (torch.exp(logmel * scale - shift) - offset).clamp_min(0.0)


def kaldi_power_to_log(power: torch.Tensor, offset: float = 1e-5, shift: float = 4.5,
                       scale: float = 5.0) -> torch.Tensor:
    """:func:`kaldi_log_mel`'s scaling of a mel power: ``(ln(power + offset) + shift) / scale``."""
    return (torch.log(power + offset) + shift) / scale
