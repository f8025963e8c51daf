"""Augmentation: waveform transforms (CPU, in the dataset), spectrogram transforms and mixup (front end).

See :mod:`esclab.augment.build` for the YAML names and the order transforms run in.
"""

from esclab.augment.base import Compose, Transform
from esclab.augment.build import (
    LEVEL_TRANSFORMS,
    SPECTROGRAM_TRANSFORMS,
    WAVEFORM_TRANSFORMS,
    build_level_mix,
    build_mixup,
    build_spec_augment,
    build_waveform_augment,
)
from esclab.augment.mix import LevelMix, Mixup, mixup
from esclab.augment.spectrogram import (
    FrequencyMasking,
    LevelGain,
    RandomAffine,
    SpecAugment,
    SpectrogramTransform,
    TimeMasking,
    TimeRoll,
)
from esclab.augment.waveform import AddWhiteNoise, Gain, PitchShift, TimeShift, TimeStretch

__all__ = [
    "LEVEL_TRANSFORMS",
    "SPECTROGRAM_TRANSFORMS",
    "WAVEFORM_TRANSFORMS",
    "AddWhiteNoise",
    "Compose",
    "FrequencyMasking",
    "Gain",
    "LevelGain",
    "LevelMix",
    "Mixup",
    "PitchShift",
    "RandomAffine",
    "SpecAugment",
    "SpectrogramTransform",
    "TimeMasking",
    "TimeRoll",
    "TimeShift",
    "TimeStretch",
    "Transform",
    "build_level_mix",
    "build_mixup",
    "build_spec_augment",
    "build_waveform_augment",
    "mixup",
]
