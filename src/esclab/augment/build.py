"""Build the augmentation pipeline from :class:`esclab.config.AugmentConfig`.

YAML names transforms in snake_case with their keyword arguments::

    waveform: {white_noise: {min_snr_db: 10, max_snr_db: 30, p: 0.5}}
    spectrogram: {time_mask: {num_masks: 2, max_width: 20}}

Transforms run in the fixed order of :data:`WAVEFORM_TRANSFORMS` and
:data:`SPECTROGRAM_TRANSFORMS`, whatever the order in the YAML (merged configs
do not keep a meaningful one): stretch and pitch first so a precomputed bank of
them can stand in for that stage, noise last so its SNR refers to the final
signal; rotation/zoom/translation before masking so the masks stay rectangular.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from esclab.augment.base import Compose, Transform
from esclab.augment.mix import LevelMix, Mixup
from esclab.augment.spectrogram import (
    FrequencyMasking,
    LevelGain,
    RandomAffine,
    SpecAugment,
    TimeMasking,
    TimeRoll,
)
from esclab.augment.waveform import AddWhiteNoise, Gain, PitchShift, TimeShift, TimeStretch
from esclab.config import AugmentConfig, ConfigError

WAVEFORM_TRANSFORMS: dict[str, type[Transform]] = {
    "time_stretch": TimeStretch,
    "pitch_shift": PitchShift,
    "time_shift": TimeShift,
    "gain": Gain,
    "white_noise": AddWhiteNoise,
}
SPECTROGRAM_TRANSFORMS: dict[str, type[Transform]] = {
    "level_gain": LevelGain,
    "time_roll": TimeRoll,
    "affine": RandomAffine,
    "freq_mask": FrequencyMasking,
    "time_mask": TimeMasking,
}
#: Spectrogram transforms that need the level kept by Kaldi log-mels (``features.kind: kaldi_logmel``).
LEVEL_TRANSFORMS = frozenset({"level_gain"})


def _build(group: str, registry: dict[str, type[Transform]], spec: Mapping[str, Any],
           given: dict[str, Any]) -> list[Transform]:
    """Instantiate the transforms named in ``spec``, in registry order.

    Args:
        group: ``"waveform"`` or ``"spectrogram"``, for error messages.
        registry: name -> class, in application order.
        spec: name -> keyword arguments (``None`` for all defaults).
        given: arguments supplied by the caller (not the YAML) to classes that take them.
    """
    unknown = sorted(set(spec) - set(registry))
    if unknown:
        raise ConfigError(f"augment.{group}: unknown transform(s) {unknown}; valid: {sorted(registry)}")
    transforms = []
    for name, cls in registry.items():
        if name not in spec:
            continue
        kwargs = spec[name] or {}
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"augment.{group}.{name}: expected a mapping of arguments, got {kwargs!r}")
        params = inspect.signature(cls).parameters
        accepted = [a for a in params if a not in given]
        bad = sorted(set(kwargs) - set(accepted))
        if bad:
            raise ConfigError(f"augment.{group}.{name}: unknown argument(s) {bad}; valid: {accepted}")
        extra = {k: v for k, v in given.items() if k in params}
        try:
            transforms.append(cls(**kwargs, **extra))
        except ValueError as err:
            raise ConfigError(f"augment.{group}.{name}: {err}") from err
    return transforms


def build_waveform_augment(aug_cfg: AugmentConfig, sample_rate: int) -> Compose | None:
    """The waveform transforms of ``aug_cfg.waveform`` as one :class:`Compose`, or ``None`` if there are none.

    They run through a precomputed bank of ``bank_size`` variants per clip (:mod:`esclab.data.bank`); the
    cheap level changes have online counterparts on Kaldi log-mels (``time_roll``, ``level_gain``,
    ``augment.level_mix_p``), drawn fresh at every step.

    Args:
        aug_cfg: the augmentation config.
        sample_rate: sample rate of the clips, in Hz.

    Raises:
        ConfigError: an unknown transform or argument, or a bad argument value.
    """
    transforms = _build("waveform", WAVEFORM_TRANSFORMS, aug_cfg.waveform, {"sample_rate": sample_rate})
    return Compose(transforms) if transforms else None


def build_spec_augment(aug_cfg: AugmentConfig) -> SpecAugment:
    """The spectrogram transforms of ``aug_cfg.spectrogram`` as a module active in training mode only.

    Raises:
        ConfigError: an unknown transform or argument, or a bad argument value.
    """
    return SpecAugment(_build("spectrogram", SPECTROGRAM_TRANSFORMS, aug_cfg.spectrogram, {}))


def build_level_mix(aug_cfg: AugmentConfig) -> LevelMix | None:
    """``LevelMix(level_mix_p, level_mix_alpha)``, or ``None`` when ``level_mix_p`` is 0."""
    return LevelMix(aug_cfg.level_mix_p, aug_cfg.level_mix_alpha) if aug_cfg.level_mix_p > 0 else None


def build_mixup(aug_cfg: AugmentConfig) -> Mixup | None:
    """``Mixup(mixup_alpha, mixup_p)``, or ``None`` when ``mixup_alpha`` or ``mixup_p`` is 0.

    Raises:
        ValueError: ``mixup_alpha < 0`` or ``mixup_p`` outside ``[0, 1]``.
    """
    if aug_cfg.mixup_alpha == 0 or aug_cfg.mixup_p == 0:
        return None
    return Mixup(aug_cfg.mixup_alpha, aug_cfg.mixup_p)
