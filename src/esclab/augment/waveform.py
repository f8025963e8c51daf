"""Waveform augmentations: numpy ``float32`` clips shaped ``(samples,)``, run on the CPU in the dataset.

Every transform returns a clip of the input's length (time stretch trims or
zero-pads its output).

Which library does what:

* **Time stretch and pitch shift** use audiomentations (``TimeStretch``,
  ``PitchShift``) with its default Signalsmith Stretch engine. It runs at the
  speed of librosa's phase vocoder (about 20 ms per 5 s clip at 22,050 Hz for
  either) and keeps short clicks closer to their shape: the envelope crest factor
  of a decaying click train stays within 3% of the original, against up to 13%
  off for the phase vocoder (measured at rates 0.8 and 1.25, +-2 semitones). We
  draw the rate or the semitones from our own generator and call the
  audiomentations transform's ``apply`` with them, because audiomentations draws
  from Python's global ``random`` and can be neither seeded per call nor frozen
  per parameter. Known limit: Signalsmith lands a pure tone up to about 1.3 Hz
  from the asked pitch (0.1 semitone at 220 Hz, 0.02 at 1 kHz; measured), far
  inside one bin of the 2048-point STFT of our features (10.8 Hz at 22,050 Hz);
  librosa's resampling-based shift is exact there but blurs transients, which
  matter more for environmental sounds.
* **White noise, time shift and gain** are one line of numpy each, written here:
  audiomentations' ``AddGaussianSNR`` scales the noise from its expected power,
  so the realised SNR wanders; ours scales from the drawn noise's actual power,
  so the SNR is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from esclab.augment.base import Transform, check_range


def _run_audiomentations(engine: Any, x: np.ndarray, sample_rate: int, **parameters: float) -> np.ndarray:
    """Apply an audiomentations transform with our parameters in place of its own draw."""
    engine.parameters = {"should_apply": True, **parameters}
    return engine.apply(x, sample_rate).astype(np.float32, copy=False)


class TimeStretch(Transform):
    """Speed up (``rate > 1``) or slow down the clip without changing its pitch.

    Args:
        sample_rate: sample rate of the clips, in Hz.
        min_rate: smallest stretch rate, >= 0.1.
        max_rate: largest stretch rate, <= 10.
        p: probability of applying the transform.

    Raises:
        ValueError: the rates are out of range or reversed.
    """

    param_names = ("rate",)

    def __init__(self, sample_rate: int, min_rate: float = 0.8, max_rate: float = 1.25,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_range("rate", min_rate, max_rate, 0.1, 10.0)
        self.sample_rate = sample_rate
        self.min_rate = min_rate
        self.max_rate = max_rate

    def randomize_parameters(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"rate": float(rng.uniform(self.min_rate, self.max_rate))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        from audiomentations import TimeStretch  # seconds to import: only when a bank stretches

        return _run_audiomentations(TimeStretch(leave_length_unchanged=True, p=1.0), x, self.sample_rate,
                                    rate=params["rate"])


class PitchShift(Transform):
    """Shift the pitch by a number of semitones without changing the duration.

    Args:
        sample_rate: sample rate of the clips, in Hz.
        min_semitones: lowest shift, >= -24 (negative shifts down).
        max_semitones: highest shift, <= 24.
        p: probability of applying the transform.

    Raises:
        ValueError: the semitones are out of range or reversed.
    """

    param_names = ("semitones",)

    def __init__(self, sample_rate: int, min_semitones: float = -2.0, max_semitones: float = 2.0,
                 p: float = 0.5) -> None:
        super().__init__(p)
        check_range("semitones", min_semitones, max_semitones, -24.0, 24.0)
        self.sample_rate = sample_rate
        self.min_semitones = min_semitones
        self.max_semitones = max_semitones

    def randomize_parameters(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"semitones": float(rng.uniform(self.min_semitones, self.max_semitones))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        from audiomentations import PitchShift  # seconds to import: only when a bank shifts

        return _run_audiomentations(PitchShift(p=1.0), x, self.sample_rate,
                                    num_semitones=params["semitones"])


class AddWhiteNoise(Transform):
    """Add Gaussian white noise at a signal-to-noise ratio drawn uniformly in dB.

    The noise is scaled from its own drawn power to the clip's mean power, so the
    SNR of the result is the drawn one exactly. A silent clip is returned unchanged
    (its SNR is undefined; adding noise would invent a signal).

    Args:
        min_snr_db: lowest SNR in dB.
        max_snr_db: highest SNR in dB.
        p: probability of applying the transform.

    Raises:
        ValueError: the SNRs are outside [-40, 120] dB or reversed.
    """

    param_names = ("snr_db", "noise")

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 40.0, p: float = 0.5) -> None:
        super().__init__(p)
        check_range("snr_db", min_snr_db, max_snr_db, -40.0, 120.0)
        self.min_snr_db = min_snr_db
        self.max_snr_db = max_snr_db

    def randomize_parameters(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"snr_db": float(rng.uniform(self.min_snr_db, self.max_snr_db)),
                "noise": rng.standard_normal(x.shape)}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        signal_power = np.mean(np.square(x, dtype=np.float64))
        noise = np.asarray(params["noise"], dtype=np.float64)
        noise_power = np.mean(np.square(noise))
        if signal_power == 0.0 or noise_power == 0.0:
            return x
        target_power = signal_power / 10.0 ** (params["snr_db"] / 10.0)
        return (x + noise * np.sqrt(target_power / noise_power)).astype(np.float32)


class TimeShift(Transform):
    """Shift the clip in time by up to ``max_fraction`` of its length, either way.

    Args:
        max_fraction: largest shift as a fraction of the clip length, in [0, 1].
        mode: ``"circular"`` wraps the shifted-out part around; ``"pad"`` drops it
            and fills the gap with zeros.
        p: probability of applying the transform.

    Raises:
        ValueError: ``max_fraction`` is out of range or ``mode`` is unknown.
    """

    param_names = ("fraction",)
    modes = ("circular", "pad")

    def __init__(self, max_fraction: float = 0.2, mode: str = "circular", p: float = 0.5) -> None:
        super().__init__(p)
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction!r}")
        if mode not in self.modes:
            raise ValueError(f"mode must be one of {self.modes}, got {mode!r}")
        self.max_fraction = max_fraction
        self.mode = mode

    def randomize_parameters(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"fraction": float(rng.uniform(-self.max_fraction, self.max_fraction))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        shift = int(round(params["fraction"] * len(x)))
        if self.mode == "circular":
            return np.roll(x, shift)
        out = np.zeros_like(x)
        if shift >= 0:
            out[shift:] = x[:len(x) - shift]
        else:
            out[:shift] = x[-shift:]
        return out


class Gain(Transform):
    """Multiply the clip by a gain drawn uniformly in dB.

    Args:
        min_db: lowest gain in dB.
        max_db: highest gain in dB.
        p: probability of applying the transform.

    Raises:
        ValueError: the gains are outside [-60, 60] dB or reversed.
    """

    param_names = ("gain_db",)

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, p: float = 0.5) -> None:
        super().__init__(p)
        check_range("db", min_db, max_db, -60.0, 60.0)
        self.min_db = min_db
        self.max_db = max_db

    def randomize_parameters(self, x: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        return {"gain_db": float(rng.uniform(self.min_db, self.max_db))}

    def apply(self, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
        return (x * 10.0 ** (params["gain_db"] / 20.0)).astype(np.float32)
