"""Level augmentations on Kaldi log-mels: the gain and the two-clip mixing are computed exactly from the
log-mels, as if done on the waveform (for mixing: the powers of uncorrelated clips add)."""

from __future__ import annotations

import math

import pytest
import torch

from esclab.augment import LevelGain, LevelMix
from esclab.config import ConfigError, load_config
from esclab.features.frontend import KaldiLogMel
from esclab.features.functional import kaldi_log_to_power, kaldi_power_to_log


def noise(seed: int, seconds: float = 0.5) -> torch.Tensor:
    return 0.1 * torch.randn(int(32000 * seconds), generator=torch.Generator().manual_seed(seed))


def test_power_and_log_are_inverse():
    x = KaldiLogMel()(noise(0))
    torch.testing.assert_close(kaldi_power_to_log(kaldi_log_to_power(x)), x, atol=1e-5, rtol=0)


def test_gain_on_the_log_mel_equals_gain_on_the_waveform():
    frontend = KaldiLogMel()
    wave = noise(1)
    gained = LevelGain(-6.0, 6.0).freeze(gain_db=torch.tensor(-6.0))(frontend(wave))
    expected = frontend(wave * 10 ** (-6.0 / 20))
    torch.testing.assert_close(gained, expected, atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="min_db"):
        LevelGain(6.0, -6.0)


def test_level_mix_adds_the_powers_of_two_clips_and_mixes_their_targets():
    frontend = KaldiLogMel()
    a, b = noise(2), noise(3)
    x = torch.cat([frontend(a), frontend(b)])
    y = torch.eye(2)
    checked = 0
    for seed in range(20):  # draws whose partner is the other clip (a clip mixed with itself stays itself)
        mixed, soft = LevelMix(p=1.0, alpha=2.0)(x, y, torch.Generator().manual_seed(seed))
        assert torch.allclose(soft.sum(dim=1), torch.ones(2))
        if soft[0, 1] <= 0:
            continue
        lam = soft[0, 0].item()
        expected = frontend(lam * a + (1 - lam) * b)
        # white noises are uncorrelated: the mixture's power is the weighted sum, up to their cross term,
        # which averages out over the bands of a frame but not in each bin
        per_frame = (mixed[0].mean(dim=-2) - expected[0].mean(dim=-2)).abs().mean().item()
        assert per_frame < 0.05 and (mixed[0] - expected[0]).abs().mean().item() < 0.1
        checked += 1
    assert checked >= 3
    untouched, same = LevelMix(p=0.0)(x, y)
    assert torch.equal(untouched, x) and torch.equal(same, y)


def test_level_augmentations_need_kaldi_log_mels_and_log_mel_inputs():
    with pytest.raises(ConfigError, match="kaldi_logmel"):
        load_config(None, ["augment.level_mix_p=0.5"])
    with pytest.raises(ConfigError, match="cache_frozen"):
        load_config("configs/experiment/mn04_probe.yaml", ["augment.level_mix_p=0.5", "model.kwargs.frozen_blocks=5"])
    cfg = load_config("configs/experiment/mn04_probe.yaml", ["augment.level_mix_p=0.5", "model.kwargs.frozen_blocks=5",
                                                             "train.cache_frozen=false"])
    assert cfg.augment.level_mix_p == 0.5 and not math.isnan(cfg.augment.level_mix_alpha)
