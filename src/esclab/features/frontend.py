"""``nn.Module`` wrappers around :mod:`esclab.features.functional`: they validate and hold buffers."""

from __future__ import annotations

import torch
from torch import nn

from esclab.config import DEFAULT_SAMPLE_RATE, AudioConfig, FeatureConfig
from esclab.features import functional as LF


def _checked_window(n_fft: int, hop_length: int, win_length: int | None) -> int:
    """The window length (``n_fft`` when ``None``) after checking ``0 < hop <= n_fft`` and ``win <= n_fft``."""
    win_length = win_length or n_fft
    if not 0 < hop_length <= n_fft or win_length > n_fft:
        raise ValueError(f"need 0 < hop_length <= n_fft and win_length <= n_fft, got hop={hop_length}, "
                         f"win={win_length}, n_fft={n_fft}")
    return win_length


def _as_batch(wave: torch.Tensor) -> torch.Tensor:
    """``(samples,)`` or ``(batch, samples)`` -> float ``(batch, samples)``."""
    if wave.ndim == 1:
        wave = wave.unsqueeze(0)
    if wave.ndim != 2:
        raise ValueError(f"expected (batch, samples), got shape {tuple(wave.shape)}")
    return wave.float()


class LogMel(nn.Module):
    """Waveform ``(batch, samples)`` -> log-mel ``(batch, 1, n_mels, frames)`` in dB.

    The Hann window and the mel filterbank are buffers, so the module moves with the
    model to any device and is exported with it.
    """

    def __init__(self, sample_rate: int = DEFAULT_SAMPLE_RATE, n_mels: int = 128, n_fft: int = 2048, hop_length: int = 512,
                 win_length: int | None = None, fmin: float = 0.0, fmax: float | None = None,
                 top_db: float | None = 80.0, frames: int | None = None):
        super().__init__()
        win_length = _checked_window(n_fft, hop_length, win_length)
        self.n_fft, self.hop_length, self.top_db, self.frames = n_fft, hop_length, top_db, frames
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)
        self.register_buffer("filterbank", LF.mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax),
                             persistent=False)
        self.blocks = LF.filterbank_blocks(self.filterbank)

    @classmethod
    def from_config(cls, audio: AudioConfig, features: FeatureConfig) -> LogMel:
        return cls(sample_rate=audio.sample_rate, n_mels=features.n_mels, n_fft=features.n_fft,
                   hop_length=features.hop_length, win_length=features.win_length, fmin=features.fmin,
                   fmax=features.fmax, top_db=features.top_db, frames=features.frames)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return LF.log_mel_spectrogram(_as_batch(wave), self.window, self.filterbank, self.n_fft, self.hop_length,
                                      self.top_db, self.frames, self.blocks)


class KaldiLogMel(nn.Module):
    """EfficientAT's front end: waveform ``(batch, samples)`` -> ``(batch, 1, n_mels, frames)``.

    Pre-emphasis 0.97, a symmetric Hann window of ``win_length`` inside an ``n_fft`` STFT,
    Kaldi mel triangles from ``fmin`` to ``fmax``, ``ln(mel + 1e-5)``, then ``(x + 4.5) / 5``
    (see :func:`esclab.features.functional.kaldi_log_mel`). The AudioSet MobileNets were
    trained on it at 32 kHz with 128 mels, ``n_fft`` 1024, window 800, hop 320, 0-15 kHz.
    """

    def __init__(self, sample_rate: int = 32000, n_mels: int = 128, n_fft: int = 1024, hop_length: int = 320,
                 win_length: int | None = 800, fmin: float = 0.0, fmax: float | None = 15000.0,
                 frames: int | None = None):
        super().__init__()
        win_length = _checked_window(n_fft, hop_length, win_length)
        self.n_fft, self.hop_length, self.frames = n_fft, hop_length, frames
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer("filterbank", LF.kaldi_mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax),
                             persistent=False)
        self.blocks = LF.filterbank_blocks(self.filterbank)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return LF.kaldi_log_mel(_as_batch(wave), self.window, self.filterbank, self.n_fft, self.hop_length,
                                frames=self.frames, blocks=self.blocks)


FRONTEND_KINDS = ("logmel", "kaldi_logmel")


def build_frontend(audio: AudioConfig, features: FeatureConfig) -> nn.Module:
    """The waveform -> spectrogram module that ``features.kind`` names, built from the config."""
    if features.kind == "kaldi_logmel":
        return KaldiLogMel(sample_rate=audio.sample_rate, n_mels=features.n_mels, n_fft=features.n_fft,
                           hop_length=features.hop_length, win_length=features.win_length, fmin=features.fmin,
                           fmax=features.fmax, frames=features.frames)
    if features.kind == "logmel":
        return LogMel.from_config(audio, features)
    raise ValueError(f"features.kind must be one of {FRONTEND_KINDS}, got {features.kind!r}")


class Standardize(nn.Module):
    """Per-mel-band standardisation ``(x - mean) / std`` with statistics from the training folds.

    ``mean`` and ``std`` are ``(n_mels,)`` buffers saved with the model; with ``None`` it is the identity.
    """

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.enabled = mean is not None
        if self.enabled:
            self.register_buffer("mean", mean.float().reshape(1, 1, -1, 1))
            self.register_buffer("std", std.float().clamp_min(1e-5).reshape(1, 1, -1, 1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return spec
        return (spec - self.mean) / self.std


def band_statistics(specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per mel band over ``(N, 1, M, T)`` (or ``(N, M, T)``) spectrograms -> two ``(M,)``."""
    bands = specs.reshape(specs.shape[0], -1, specs.shape[-1]) if specs.ndim == 4 else specs
    bands = bands.transpose(0, 1).reshape(bands.shape[1], -1).double()
    return bands.mean(dim=1).float(), bands.std(dim=1).float()
