"""Every augment preset builds and runs; unknown names and arguments are rejected clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from esclab.augment import (
    LEVEL_TRANSFORMS,
    SPECTROGRAM_TRANSFORMS,
    WAVEFORM_TRANSFORMS,
    AddWhiteNoise,
    Compose,
    Gain,
    Mixup,
    SpecAugment,
    TimeShift,
    build_level_mix,
    build_mixup,
    build_spec_augment,
    build_waveform_augment,
)
from esclab.config import AugmentConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = sorted(p.stem for p in (CONFIGS / "augment").glob("*.yaml"))
SR = 22050


def load_preset(name: str, tmp_path: Path) -> AugmentConfig:
    """Compose the preset the way an experiment does: ``defaults: {augment: name}`` (with the Kaldi front end
    at 32 kHz where the preset changes the level, which only Kaldi log-mels keep)."""
    experiment = tmp_path / "experiment.yaml"
    level = "level_" in (CONFIGS / "augment" / f"{name}.yaml").read_text()
    frontend = "  features: kaldi_logmel_32k\naudio:\n  sample_rate: 32000\n" if level else ""
    experiment.write_text(f"defaults:\n  augment: {name}\n{frontend}")
    return load_config(experiment, configs_root=CONFIGS).augment


def test_the_four_named_presets_exist():
    assert {"none", "light", "paper", "strong"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_and_runs(name, tmp_path):
    cfg = load_preset(name, tmp_path)
    wave_augment, spec_augment = build_waveform_augment(cfg, SR), build_spec_augment(cfg)
    clip = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    if wave_augment is not None:
        out = wave_augment(clip, np.random.default_rng(0))
        assert out.shape == clip.shape and out.dtype == np.float32 and np.isfinite(out).all()
    x = torch.rand(4, 1, 32, 40) * -80
    if cfg.level_mix_p > 0 or "level_gain" in cfg.spectrogram:  # Kaldi log-mels: (ln(power + 1e-5) + 4.5) / 5
        x = torch.rand(4, 1, 32, 40) * 2 - 1
        mixed, soft = build_level_mix(cfg)(x, torch.eye(4), torch.Generator().manual_seed(0))
        assert mixed.shape == x.shape and torch.isfinite(mixed).all() and torch.allclose(soft.sum(1), torch.ones(4))
    out = spec_augment.train()(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert spec_augment.eval()(x) is x
    if cfg.mixup_alpha > 0:
        mixed, soft = build_mixup(cfg)(x, torch.eye(4), torch.Generator().manual_seed(0))
        assert mixed.shape == x.shape and torch.allclose(soft.sum(1), torch.ones(4))


def test_none_preset_builds_nothing(tmp_path):
    cfg = load_preset("none", tmp_path)
    x = torch.rand(2, 1, 8, 8)
    assert build_waveform_augment(cfg, SR) is None and build_mixup(cfg) is None
    assert build_spec_augment(cfg).train()(x) is x


def test_strong_preset_uses_every_transform(tmp_path):
    cfg = load_preset("strong", tmp_path)
    assert set(cfg.waveform) == set(WAVEFORM_TRANSFORMS)
    # all but the transforms added for the AudioSet MobileNets after the preset: the level ones need Kaldi
    # log-mels, and time_roll is EfficientAT's
    assert set(cfg.spectrogram) == set(SPECTROGRAM_TRANSFORMS) - LEVEL_TRANSFORMS - {"time_roll"}
    assert cfg.bank_size > 0 and isinstance(build_mixup(cfg), Mixup)


def test_builds_in_the_fixed_order_with_yaml_arguments():
    cfg = AugmentConfig(waveform={"white_noise": {"min_snr_db": 5, "max_snr_db": 9, "p": 0.2},
                                  "gain": None, "time_shift": {"mode": "pad"}})
    chain = build_waveform_augment(cfg, SR)
    assert isinstance(chain, Compose)
    assert [type(t) for t in chain.transforms] == [TimeShift, Gain, AddWhiteNoise]
    noise = chain.transforms[2]
    assert (noise.min_snr_db, noise.max_snr_db, noise.p) == (5, 9, 0.2)
    assert chain.transforms[0].mode == "pad"


def test_sample_rate_goes_to_the_transforms_that_need_it():
    chain = build_waveform_augment(AugmentConfig(waveform={"time_stretch": {}, "pitch_shift": {}}), 16000)
    assert [t.sample_rate for t in chain.transforms] == [16000, 16000]


def test_spec_augment_is_a_module_in_the_fixed_order():
    names = {"time_mask": {}, "affine": {}, "freq_mask": {}, "time_roll": {}, "level_gain": {}}
    module = build_spec_augment(AugmentConfig(spectrogram=names))
    assert isinstance(module, SpecAugment) and isinstance(module, torch.nn.Module)
    assert [type(t) for t in module.transforms.transforms] == list(SPECTROGRAM_TRANSFORMS.values())


@pytest.mark.parametrize(("cfg", "message"), [
    (AugmentConfig(waveform={"reverb": {}}),
     r"augment.waveform: unknown transform\(s\) \['reverb'\]; valid: \['gain', 'pitch_shift'"),
    (AugmentConfig(spectrogram={"cutout": {}}),
     r"augment.spectrogram: unknown transform\(s\) \['cutout'\]; "
     r"valid: \['affine', 'freq_mask', 'level_gain', 'time_mask', 'time_roll'\]"),
    (AugmentConfig(waveform={"gain": {"max_gain": 3}}),
     r"augment.waveform.gain: unknown argument\(s\) \['max_gain'\]; valid: \['min_db', 'max_db', 'p'\]"),
    (AugmentConfig(waveform={"time_stretch": {"sample_rate": 8000}}),
     r"augment.waveform.time_stretch: unknown argument\(s\) \['sample_rate'\]"),
    (AugmentConfig(waveform={"white_noise": {"min_snr_db": 30, "max_snr_db": 10}}),
     "augment.waveform.white_noise: min_snr_db must be <= max_snr_db"),
    (AugmentConfig(spectrogram={"time_mask": [2, 10]}),
     "augment.spectrogram.time_mask: expected a mapping of arguments"),
])
def test_bad_names_and_arguments_raise_a_clear_value_error(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_waveform_augment(cfg, SR)
        build_spec_augment(cfg)


def test_mixup_is_built_from_alpha_and_p():
    assert build_mixup(AugmentConfig(mixup_alpha=0.0)) is None
    assert build_mixup(AugmentConfig(mixup_alpha=0.3, mixup_p=0.0)) is None
    assert repr(build_mixup(AugmentConfig(mixup_alpha=0.3, mixup_p=0.5))) == "Mixup(alpha=0.3, p=0.5)"
    with pytest.raises(ValueError, match="p must be a probability"):
        build_mixup(AugmentConfig(mixup_alpha=0.3, mixup_p=1.5))
