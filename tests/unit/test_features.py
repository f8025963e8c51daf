"""Log-mel parity with librosa, batch consistency, frame fixing, standardisation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from esclab.audio import load_audio
from esclab.features import LogMel, Standardize, band_statistics
from esclab.features.functional import (
    apply_filterbank,
    filterbank_blocks,
    fix_frames,
    kaldi_mel_filterbank,
    mel_filterbank,
    slaney_hz_to_mel,
    slaney_mel_to_hz,
)


def librosa_logmel(wave: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int, top_db: float = 80.0):
    mel = librosa.feature.melspectrogram(y=wave, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    return librosa.power_to_db(mel, ref=np.max, top_db=top_db)


def test_matches_librosa_on_real_clip_within_1e3_db(esc50_mini):
    path = next((esc50_mini / "audio").glob("*.ogg"))
    wave = load_audio(path, 22050, 5.0)
    ours = LogMel()(torch.from_numpy(wave))[0, 0].numpy()
    ref = librosa_logmel(wave, 22050, 2048, 512, 128)
    assert ours.shape == ref.shape == (128, 216)
    assert np.abs(ours - ref).max() < 1e-3


@pytest.mark.parametrize("sr,n_fft,hop,n_mels", [(16000, 1024, 256, 64), (8000, 256, 128, 32)])
def test_matches_librosa_other_settings(sr, n_fft, hop, n_mels):
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal(sr) + 0.3 * np.sin(np.arange(sr) * 0.05)).astype(np.float32)
    ours = LogMel(sr, n_mels, n_fft, hop)(torch.from_numpy(wave))[0, 0].numpy()
    assert np.abs(ours - librosa_logmel(wave, sr, n_fft, hop, n_mels)).max() < 1e-3


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(22050, 2048, 128, 0.0, None), (16000, 512, 64, 50.0, 7000.0),
                                                       (32000, 1024, 128, 0.0, 15000.0), (8000, 256, 20, 0.0, None)])
def test_mel_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)


def test_slaney_scale_matches_librosa_and_inverts():
    hz = np.array([0.0, 250.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    np.testing.assert_allclose(slaney_hz_to_mel(hz), librosa.hz_to_mel(hz), rtol=1e-12)
    np.testing.assert_allclose(slaney_mel_to_hz(slaney_hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("bank", [mel_filterbank(22050, 2048, 128), mel_filterbank(8000, 256, 20),
                                  kaldi_mel_filterbank(32000, 1024, 128, 0.0, 15000.0)])
def test_blocked_filterbank_product_equals_the_dense_one(bank):
    blocks = filterbank_blocks(bank)
    covered = torch.zeros_like(bank, dtype=torch.bool)
    for r0, r1, c0, c1 in blocks:
        covered[r0:r1, c0:c1] = True
    assert torch.all(covered | (bank == 0)), "a non-zero weight outside every block"
    assert covered.float().mean() < 0.2  # the point: most of the matrix is skipped
    power = torch.rand(3, bank.shape[1], 40)
    torch.testing.assert_close(apply_filterbank(bank, power, blocks), bank @ power, rtol=1e-5, atol=1e-6)


def test_batched_equals_stacked_singles():
    rng = np.random.default_rng(2)
    waves = torch.from_numpy((rng.standard_normal((4, 8000)) * np.array([[1], [0.1], [0.01], [2]])).astype(np.float32))
    frontend = LogMel(8000, 32, 256, 128, frames=60)
    batched = frontend(waves)
    singles = torch.cat([frontend(w) for w in waves])
    assert batched.shape == (4, 1, 32, 60)
    torch.testing.assert_close(batched, singles, atol=1e-4, rtol=0)


def test_top_db_floor_and_ref_max():
    spec = LogMel(8000, 32, 256, 128)(torch.randn(2, 8000))
    assert torch.allclose(spec.amax(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert spec.min() >= -80.0 - 1e-4


def test_fix_frames_trims_and_pads_with_floor():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    assert fix_frames(x, 4).shape == (2, 3, 4)
    padded = fix_frames(x, 7)
    assert padded.shape == (2, 3, 7)
    assert torch.all(padded[0, :, 5:] == x[0].min())
    assert fix_frames(x, None) is x


def test_standardize_uses_given_stats_and_roundtrips():
    specs = torch.randn(10, 1, 4, 20) * torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1) + 5
    mean, std = band_statistics(specs)
    out = Standardize(mean, std)(specs)
    assert torch.allclose(out.mean(dim=(0, 1, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 1, 3)), torch.ones(4), atol=1e-2)
    assert torch.equal(Standardize()(specs), specs)
    with pytest.raises(ValueError, match="both"):
        Standardize(mean, None)


def test_bad_frontend_arguments():
    with pytest.raises(ValueError, match="hop_length"):
        LogMel(n_fft=256, hop_length=512)
