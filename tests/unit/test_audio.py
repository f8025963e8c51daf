"""load_audio: formats, channels, rates, lengths, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from esclab.audio import AudioDecodeError, load_audio, native_rate, pad_or_trim, resample
from tests.conftest import tone


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_formats_decode_to_mono_float(tmp_path, fmt, subtype):
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, tone(440, 1.0, 22050), 22050, format=fmt, subtype=subtype)
    wave = load_audio(path, 22050)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 22050) <= 1
    assert 0.4 < np.abs(wave).max() < 0.6


def test_mp3_decodes(tmp_path):
    path = tmp_path / "x.mp3"
    try:
        sf.write(path, tone(440, 1.0, 22050), 22050, format="MP3")
    except (sf.LibsndfileError, ValueError, TypeError):
        pytest.skip("this libsndfile cannot write mp3, so no fixture")
    assert len(load_audio(path, 22050, duration=1.0)) == 22050


def test_stereo_is_mixed_to_mono(tmp_path):
    left, right = tone(440, 0.5, 8000), -tone(440, 0.5, 8000)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right * 0 + left * 0.5], axis=1), 8000, subtype="FLOAT")
    wave = load_audio(path, 8000)
    np.testing.assert_allclose(wave, 0.75 * left, atol=1e-6)


def test_48k_is_resampled_and_keeps_pitch(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(path, tone(1000, 1.0, 48000), 48000)
    wave = load_audio(path, 22050)
    assert abs(len(wave) - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 22050 / len(wave)
    assert abs(peak_hz - 1000) < 2


@pytest.mark.parametrize("seconds", [0.3, 7.0])
def test_short_and_long_become_exact_length(tmp_path, seconds):
    path = tmp_path / "x.wav"
    sf.write(path, tone(300, seconds, 22050), 22050)
    wave = load_audio(path, 22050, duration=5.0)
    assert len(wave) == 110250
    if seconds < 5:
        assert np.all(wave[int(seconds * 22050) + 1:] == 0)


def test_pad_or_trim():
    x = np.arange(5, dtype=np.float32)
    assert pad_or_trim(x, 3).tolist() == [0, 1, 2]
    assert pad_or_trim(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


@pytest.mark.parametrize("content,why", [
    (b"", "cannot decode"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio at all", "cannot decode"),
    (b"this is a text file, not audio\n" * 20, "cannot decode"),
])
def test_corrupt_files_raise_named_error(tmp_path, content, why):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=f"bad.wav.*{why}"):
        load_audio(path)


def test_zero_length_and_nan_and_missing(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioDecodeError, match="no samples"):
        load_audio(empty)
    nan = tmp_path / "nan.wav"
    data = tone(440, 0.1, 8000)
    data[10] = np.nan
    sf.write(nan, data, 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        load_audio(nan)
    with pytest.raises(AudioDecodeError, match="no such file"):
        load_audio(tmp_path / "absent.wav")


def test_truncated_ogg_of_real_clip_is_an_error_not_a_crash(tmp_path, esc50_mini):
    src = next((esc50_mini / "audio").glob("*.ogg")).read_bytes()
    bad = tmp_path / "cut.ogg"
    bad.write_bytes(src[:200])
    with pytest.raises(AudioDecodeError):
        load_audio(bad)


def band_energy(wave: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / sr)
    return float(spectrum[(freqs >= lo) & (freqs <= hi)].sum())


def test_band_rate_removes_what_the_band_never_held():
    # 44.1 kHz -> 32 kHz keeps a 14 kHz tone (under 16 kHz); through a 22.05 kHz band it must go (over 11 kHz).
    high, low = tone(14000, 1.0, 44100), tone(1000, 1.0, 44100)
    plain = resample(high, 44100, 32000)
    banded = resample(high, 44100, 32000, band_rate=22050)
    assert len(banded) == len(plain) == 32000
    assert band_energy(plain, 32000, 13900, 14100) > 0.5 * float(np.sum(np.abs(np.fft.rfft(plain)) ** 2))
    assert np.sum(banded ** 2) < 1e-3 * np.sum(plain ** 2)
    kept = resample(low, 44100, 32000, band_rate=22050)
    assert np.sum(kept[1000:-1000] ** 2) == pytest.approx(np.sum(plain[1000:-1000] ** 2), rel=0.02)
    assert band_energy(kept, 32000, 990, 1010) > 0.99 * float(np.sum(np.abs(np.fft.rfft(kept)) ** 2))


def test_band_rate_at_or_above_the_file_rate_changes_nothing():
    wave = tone(1000, 0.5, 22050)
    np.testing.assert_array_equal(resample(wave, 22050, 32000, band_rate=22050), resample(wave, 22050, 32000))
    np.testing.assert_array_equal(resample(wave, 22050, 32000, band_rate=44100), resample(wave, 22050, 32000))


def test_load_audio_applies_the_band_rate(tmp_path):
    path = tmp_path / "hi.wav"
    sf.write(path, tone(14000, 1.0, 44100) + tone(1000, 1.0, 44100), 44100, subtype="FLOAT")
    wave = load_audio(path, 32000, band_rate=22050)
    assert band_energy(wave, 32000, 13000, 15000) < 1e-3 * band_energy(wave, 32000, 900, 1100)


def test_native_rate_reads_the_header(tmp_path, esc50_mini):
    path = tmp_path / "x.flac"
    sf.write(path, tone(440, 0.1, 44100), 44100)
    assert native_rate(path) == 44100
    assert native_rate(next((esc50_mini / "audio").glob("*.ogg"))) == 22050
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is a text file, not audio\n" * 20)
    with pytest.raises(AudioDecodeError, match="bad.wav"):
        native_rate(bad)
    with pytest.raises(AudioDecodeError, match="absent.wav"):
        native_rate(tmp_path / "absent.wav")
