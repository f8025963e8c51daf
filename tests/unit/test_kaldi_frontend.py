"""EfficientAT's Kaldi-style front end: the mel triangles against the Kaldi formula worked by hand,
pre-emphasis, the fixed log scaling, frame count, batch consistency, and the ``features.kind`` switch."""

from __future__ import annotations

import math

import pytest
import torch

from esclab.config import AudioConfig, ConfigError, FeatureConfig, load_config
from esclab.features.frontend import KaldiLogMel, LogMel, build_frontend
from esclab.features.functional import kaldi_log_mel, kaldi_mel_filterbank, kaldi_mel_scale, preemphasis


def mel(freq_hz: float) -> float:
    """Kaldi's mel scale, written out here independently of the code under test."""
    return 1127.0 * math.log(1.0 + freq_hz / 700.0)


def test_kaldi_mel_scale_known_values():
    assert kaldi_mel_scale(0.0) == 0.0
    assert kaldi_mel_scale(700.0) == pytest.approx(1127.0 * math.log(2.0), abs=1e-9)
    assert kaldi_mel_scale(1000.0) == pytest.approx(mel(1000.0), abs=1e-9)


def test_tiny_filterbank_matches_the_kaldi_triangles_by_hand():
    # 16 kHz, n_fft 16: bins every 1000 Hz; 3 bands over mel(0)..mel(8000), 4 equal mel steps.
    bank = kaldi_mel_filterbank(16000, 16, 3, 0.0, 8000.0)
    assert bank.shape == (3, 9)
    delta = (mel(8000.0) - mel(0.0)) / 4  # span / (n_mels + 1), about 710 mel
    bins = [mel(1000.0 * k) for k in range(8)]  # mel of bin k, k < n_fft // 2

    def rising(band: int, k: int) -> float:
        return (bins[k] - band * delta) / delta

    def falling(band: int, k: int) -> float:
        return ((band + 2) * delta - bins[k]) / delta

    expected = {
        (0, 0): 0.0,  # 0 Hz sits on band 0's left edge
        (0, 1): falling(0, 1),  # 1000 Hz (~1000 mel) is past band 0's peak at ~710 mel
        (1, 1): rising(1, 1),
        (1, 2): falling(1, 2),
        (1, 4): 0.0,  # 4000 Hz (~2146 mel) is past band 1's right edge (~2130 mel)
        (2, 2): rising(2, 2),
        (2, 4): falling(2, 4),
        (2, 7): falling(2, 7),
        (0, 5): 0.0,
    }
    for (band, k), weight in expected.items():
        assert bank[band, k].item() == pytest.approx(weight, abs=1e-6), (band, k)
    assert 0.0 < expected[(0, 1)] < 1.0 and 0.0 < expected[(2, 4)] < 1.0  # the hand values are real slopes
    assert torch.all(bank[:, -1] == 0)  # the Nyquist bin is padded with a zero weight
    assert torch.all((bank >= 0) & (bank <= 1))
    assert torch.all(bank.amax(dim=1) <= 1.0)


def test_efficientat_filterbank_has_the_right_shape_and_no_empty_band():
    bank = kaldi_mel_filterbank(32000, 1024, 128, 0.0, 15000.0)
    assert bank.shape == (128, 513)
    assert torch.all(bank.sum(dim=1) > 0)
    assert torch.all(bank[:, -1] == 0) and torch.all((bank >= 0) & (bank <= 1))
    # No weight above fmax: bins past 15 kHz (bin 480 = 15000 Hz) are outside every band.
    assert torch.all(bank[:, 481:] == 0)


def test_filterbank_rejects_bad_edges():
    with pytest.raises(ValueError, match="fmin"):
        kaldi_mel_filterbank(16000, 16, 3, 5000.0, 4000.0)


def test_preemphasis_is_a_valid_convolution():
    # y[n] = x[n + 1] - c x[n]: one sample shorter, no first sample kept (EfficientAT's conv1d with [-c, 1]).
    wave = torch.tensor([[1.0, 2.0, 3.0, 5.0], [0.0, 1.0, 0.0, -1.0]], dtype=torch.float64)
    expected = torch.tensor([[2.0 - 0.97, 3.0 - 1.94, 5.0 - 2.91], [1.0, -0.97, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(preemphasis(wave), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(preemphasis(wave, 0.5)[0], torch.tensor([1.5, 2.0, 3.5], dtype=torch.float64))


def test_silence_maps_to_the_scaled_log_offset_everywhere():
    frontend = KaldiLogMel()
    spec = frontend(torch.zeros(2, 32000))
    floor = (math.log(1e-5) + 4.5) / 5
    torch.testing.assert_close(spec, torch.full_like(spec, floor), rtol=0, atol=1e-6)
    # The same through the pure function with the module's buffers.
    direct = kaldi_log_mel(torch.zeros(1, 32000), frontend.window, frontend.filterbank, 1024, 320)
    torch.testing.assert_close(direct, torch.full_like(direct, floor), rtol=0, atol=1e-6)


@pytest.mark.parametrize("samples", [160000, 16000, 16320, 16321])
def test_frames_are_one_plus_preemphasised_samples_over_hop(samples):
    spec = KaldiLogMel()(torch.randn(samples) * 0.1)
    assert spec.shape == (1, 1, 128, 1 + (samples - 1) // 320)


def test_five_seconds_at_32k_is_128_by_500():
    assert KaldiLogMel()(torch.zeros(160000)).shape == (1, 1, 128, 500)


def test_window_is_symmetric_hann_of_800():
    window = KaldiLogMel().window
    assert window.shape == (800,)
    torch.testing.assert_close(window, torch.hann_window(800, periodic=False))


def test_batched_equals_stacked_singles():
    gen = torch.Generator().manual_seed(0)
    waves = 0.3 * torch.randn(3, 32000, generator=gen)
    frontend = KaldiLogMel(frames=101)
    batched = frontend(waves)
    singles = torch.cat([frontend(w) for w in waves])
    assert batched.shape == (3, 1, 128, 101)
    torch.testing.assert_close(batched, singles, rtol=0, atol=1e-5)


def test_build_frontend_dispatches_on_kind():
    audio = AudioConfig(sample_rate=32000)
    kaldi = build_frontend(audio, FeatureConfig(kind="kaldi_logmel", n_fft=1024, win_length=800, hop_length=320,
                                                fmax=15000.0, frames=500))
    assert isinstance(kaldi, KaldiLogMel) and kaldi.frames == 500 and kaldi.filterbank.shape == (128, 513)
    assert isinstance(build_frontend(audio, FeatureConfig(kind="logmel")), LogMel)


def test_efficientat_feature_config_builds_the_kaldi_front_end():
    cfg = load_config("configs/experiment/mn04_probe.yaml")
    frontend = build_frontend(cfg.audio, cfg.features)
    assert isinstance(frontend, KaldiLogMel)
    assert frontend(torch.zeros(cfg.audio.num_samples)).shape == (1, 1, 128, 500)


def test_unknown_kind_fails_in_config_validation():
    with pytest.raises(ConfigError, match="features.kind"):
        load_config(None, ["features.kind=mfcc"])
    with pytest.raises(ValueError, match="features.kind"):
        build_frontend(AudioConfig(), FeatureConfig(kind="mfcc"))
