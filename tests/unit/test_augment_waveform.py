"""Waveform transforms do what they claim: exact SNR, stretch by the rate, shift by the semitones."""

from __future__ import annotations

import numpy as np
import pytest

from esclab.augment import AddWhiteNoise, Compose, Gain, PitchShift, TimeShift, TimeStretch

SR = 22050
N_FFT = 2048  # the features' STFT size


def tone(freq: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise_clip(seed: int = 0, n: int = SR) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def every_transform(p: float) -> list:
    return [TimeStretch(SR, 0.8, 1.25, p=p), PitchShift(SR, -3, 3, p=p), AddWhiteNoise(5, 30, p=p),
            TimeShift(0.3, p=p), Gain(-6, 6, p=p)]


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    clean64 = clean.astype(np.float64)
    return 10 * np.log10(np.mean(clean64**2) / np.mean((noisy - clean64) ** 2))


def burst_seconds(x: np.ndarray, sr: int = SR) -> float:
    """Length of the span where the 10 ms energy envelope exceeds half its peak."""
    envelope = np.convolve(x.astype(np.float64) ** 2, np.ones(sr // 100) / (sr // 100), mode="same")
    loud = np.flatnonzero(envelope > 0.5 * envelope.max())
    return (loud[-1] - loud[0]) / sr


def peak_hz(x: np.ndarray, sr: int = SR) -> float:
    """Peak frequency of the Hann-windowed spectrum, refined by a parabola through the log peak."""
    spectrum = np.log(np.abs(np.fft.rfft(x * np.hanning(len(x)))))
    k = int(np.argmax(spectrum))
    left, mid, right = spectrum[k - 1: k + 2]
    return (k + 0.5 * (left - right) / (left - 2 * mid + right)) * sr / len(x)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_frozen_noise_lands_on_the_asked_snr(snr):
    clip = tone(440)
    noisy = AddWhiteNoise(0, 30).freeze(snr_db=snr)(clip, np.random.default_rng(1))
    assert abs(snr_db(clip, noisy) - snr) < 0.5


def test_drawn_noise_snr_matches_the_drawn_value_and_range():
    transform, clip, rng = AddWhiteNoise(10, 20, p=1.0), noise_clip(), np.random.default_rng(2)
    for _ in range(5):
        params = transform.randomize_parameters(clip, rng)
        noisy = transform.apply(clip, params)
        assert 10 <= params["snr_db"] <= 20
        assert abs(snr_db(clip, noisy) - params["snr_db"]) < 0.5


def test_noise_on_silence_is_silence():
    silent = np.zeros(SR, np.float32)
    out = AddWhiteNoise(p=1.0)(silent, np.random.default_rng(0))
    assert np.array_equal(out, silent)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_changes_a_burst_duration_by_the_rate(rate):
    clip = np.zeros(2 * SR, np.float32)
    clip[SR // 5: SR // 5 + SR // 2] = tone(440, 0.5)
    out = TimeStretch(SR, 0.5, 2.0).freeze(rate=rate)(clip)
    assert len(out) == len(clip) and out.dtype == np.float32
    assert burst_seconds(clip) / burst_seconds(out) == pytest.approx(rate, rel=0.03)


@pytest.mark.parametrize("semitones", [-4.0, -1.0, 2.5, 4.0])
def test_pitch_shift_moves_a_tone_peak_by_the_semitones(semitones):
    clip = tone(1000)
    out = PitchShift(SR, -5, 5).freeze(semitones=semitones)(clip)
    assert len(out) == len(clip) and out.dtype == np.float32
    peak, expected = peak_hz(out), 1000 * 2 ** (semitones / 12)
    assert abs(peak - expected) <= SR / N_FFT  # within one bin of the features' STFT
    assert abs(12 * np.log2(peak / 1000) - semitones) < 0.05


def test_time_shift_circular_rolls_and_pad_fills_with_zeros():
    clip = np.arange(1, 101, dtype=np.float32)
    rolled = TimeShift(0.5, "circular").freeze(fraction=0.1)(clip)
    padded = TimeShift(0.5, "pad").freeze(fraction=-0.1)(clip)
    assert np.array_equal(rolled, np.roll(clip, 10))
    assert np.array_equal(padded[:90], clip[10:]) and not padded[90:].any()


def test_gain_scales_by_the_decibels():
    clip = noise_clip()
    out = Gain(-12, 12).freeze(gain_db=6.0)(clip)
    assert np.allclose(out, clip * 10 ** (6 / 20), rtol=1e-6)


@pytest.mark.parametrize("transform", every_transform(p=0.0), ids=lambda t: type(t).__name__)
def test_p_zero_is_the_identity(transform):
    clip = noise_clip()
    assert transform(clip, np.random.default_rng(0)) is clip


@pytest.mark.parametrize("transform", every_transform(p=1.0), ids=lambda t: type(t).__name__)
def test_same_seed_same_output_other_seed_other_output(transform):
    clip = noise_clip()
    first = transform(clip, np.random.default_rng(7))
    again = transform(clip, np.random.default_rng(7))
    other = transform(clip, np.random.default_rng(8))
    assert len(first) == len(clip) and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_p_applies_at_the_asked_rate():
    transform, clip, rng = Gain(3, 3, p=0.3), noise_clip(), np.random.default_rng(0)
    applied = sum(transform(clip, rng) is not clip for _ in range(2000))
    assert applied / 2000 == pytest.approx(0.3, abs=0.04)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TimeStretch(SR, 1.2, 0.9), "min_rate must be <= max_rate"),
    (lambda: TimeStretch(SR, 0.01, 1.0), r"min_rate and max_rate must lie in \[0.1, 10.0\]"),
    (lambda: PitchShift(SR, -30, 0), "min_semitones and max_semitones must lie in"),
    (lambda: AddWhiteNoise(30, 10), "min_snr_db must be <= max_snr_db"),
    (lambda: TimeShift(1.5), r"max_fraction must be in \[0, 1\]"),
    (lambda: TimeShift(0.1, mode="reflect"), "mode must be one of"),
    (lambda: Gain(6, -6), "min_db must be <= max_db"),
    (lambda: Gain(p=1.5), r"p must be a probability in \[0, 1\]"),
    (lambda: Gain(p=True), "p must be a probability"),
    (lambda: Gain().freeze(gain=3), r"unknown parameter\(s\) \['gain'\]; valid: \['gain_db'\]"),
])
def test_bad_arguments_raise_a_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_freeze_pins_params_and_leaves_the_original_alone():
    transform = AddWhiteNoise(20, 30, p=0.25)
    frozen = transform.freeze(snr_db=5.0)
    assert transform.p == 0.25 and not transform.frozen
    assert frozen.p == 1.0 and frozen.frozen == {"snr_db": 5.0}
    clip = tone(300)
    noisy_a, noisy_b = frozen(clip, np.random.default_rng(0)), frozen(clip, np.random.default_rng(1))
    assert abs(snr_db(clip, noisy_a) - 5.0) < 0.5 and abs(snr_db(clip, noisy_b) - 5.0) < 0.5
    assert not np.array_equal(noisy_a, noisy_b)  # the noise itself is still drawn


def test_reprs_list_the_arguments():
    assert repr(TimeShift(0.1, "pad", p=0.3)) == "TimeShift(max_fraction=0.1, mode='pad', p=0.3)"
    assert repr(TimeStretch(SR, 0.9, 1.1)) == \
        "TimeStretch(sample_rate=22050, min_rate=0.9, max_rate=1.1, p=0.5)"
    assert repr(Gain(-3, 3).freeze(gain_db=2)) == "Gain(min_db=-3, max_db=3, p=1.0).freeze(gain_db=2)"
    assert repr(Compose([Gain()])) == "Compose([\n    Gain(min_db=-6.0, max_db=6.0, p=0.5),\n])"


def test_compose_applies_in_order():
    clip = np.arange(1, 11, dtype=np.float32)
    chain = Compose([Gain().freeze(gain_db=20.0), TimeShift(0.5, "pad").freeze(fraction=0.2)])
    expected = np.concatenate([[0, 0], clip[:8] * 10]).astype(np.float32)
    assert np.allclose(chain(clip), expected) and len(chain) == 2
