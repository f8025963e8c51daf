"""Feature cache: hit, miss, config change, corrupt entry, unreadable clip."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from esclab.config import AudioConfig, FeatureConfig
from esclab.features.cache import FeatureCache, cache_key


@pytest.fixture
def clips(esc50_mini):
    paths = sorted(str(p) for p in (esc50_mini / "audio").glob("*.ogg"))[:3]
    return paths, [p.rsplit("/", 1)[1][:-4] for p in paths]


def make(tmp_path, **feature_kw):
    return FeatureCache(AudioConfig(), FeatureConfig(cache_dir=str(tmp_path), **feature_kw))


def test_second_load_reads_the_cache_without_decoding(tmp_path, clips, monkeypatch):
    import esclab.features.cache as C

    decoded = []
    read = C.read_audio
    monkeypatch.setattr(C, "read_audio", lambda path: decoded.append(path) or read(path))
    first = make(tmp_path)
    specs, bad = first.load(*clips, progress=False, workers=1)  # in this process, where the counter is
    assert specs.shape == (3, 128, 215) and not bad and first.computed == 3 and decoded == clips[0]
    decoded.clear()
    second = make(tmp_path)
    again, _ = second.load(*clips, progress=False, workers=1)
    assert second.computed == 0 and not decoded
    np.testing.assert_array_equal(specs, again)


def test_changed_config_does_not_reuse_stale_entries(tmp_path, clips):
    make(tmp_path).load(*clips, progress=False)
    other = make(tmp_path, n_mels=64)
    specs, _ = other.load(*clips, progress=False)
    assert other.computed == 3 and specs.shape == (3, 64, 215)
    assert cache_key(AudioConfig(), FeatureConfig()) != cache_key(AudioConfig(sample_rate=16000), FeatureConfig())
    # settings applied after the cache do not split it
    assert cache_key(AudioConfig(), FeatureConfig()) == cache_key(
        AudioConfig(), dataclasses.replace(FeatureConfig(), standardize=True, cache_dir="/elsewhere"))


@pytest.mark.parametrize("damage", [b"", b"not an npy file", "wrong_shape"])
def test_corrupt_entry_is_rebuilt_not_trusted(tmp_path, clips, damage):
    cache = make(tmp_path)
    good, _ = cache.load(*clips, progress=False)
    entry = cache.entry(clips[0][0], clips[1][0])
    if damage == "wrong_shape":
        np.save(entry, np.zeros((5, 5), np.float32))
    else:
        entry.write_bytes(damage)
    fresh = make(tmp_path)
    rebuilt, _ = fresh.load(*clips, progress=False)
    assert fresh.computed == 1
    np.testing.assert_array_equal(rebuilt, good)
    assert np.load(entry).shape == (128, 215)


def test_unreadable_clip_is_skipped_and_named(tmp_path, clips, caplog):
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS" + b"\x00" * 100)
    paths, ids = clips
    specs, skipped = make(tmp_path / "c").load([*paths, str(bad)], [*ids, "broken"], progress=False)
    assert specs.shape[0] == 3
    assert list(skipped) == [str(bad)] and "broken.ogg" in skipped[str(bad)]
    assert "broken.ogg" in caplog.text


def test_changed_file_is_recomputed(tmp_path, clips):
    import shutil

    src = tmp_path / "clip.ogg"
    shutil.copy(clips[0][0], src)
    cache = make(tmp_path / "c")
    cache.load([str(src)], ["clip"], progress=False)
    shutil.copy(clips[0][1], src)  # new content, same name
    again = make(tmp_path / "c")
    again.load([str(src)], ["clip"], progress=False)
    assert again.computed == 1


@pytest.fixture
def tones(tmp_path):
    """40 tones of different pitch and length (some padded, some trimmed to audio.duration), one broken file."""
    import soundfile as sf

    from tests.conftest import tone

    folder = tmp_path / "tones"
    folder.mkdir()
    paths, ids = [], []
    for i in range(40):
        path = folder / f"t{i}.wav"
        sf.write(path, tone(200 + 37 * i, seconds=0.3 + 0.02 * i, sr=8000), 8000)
        paths.append(str(path))
        ids.append(f"t{i}")
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\x00" * 40)
    paths.insert(17, str(broken))
    ids.insert(17, "broken")
    return paths, ids


def tone_cache(root):
    return FeatureCache(AudioConfig(sample_rate=8000, duration=0.5),
                        FeatureConfig(n_mels=32, n_fft=256, hop_length=64, frames=60, cache_dir=str(root)))


def test_parallel_workers_give_the_sequential_arrays(tmp_path, tones, caplog, monkeypatch):
    import esclab.features.cache as C

    pools = []
    monkeypatch.setattr(C, "ProcessPoolExecutor", lambda *a, **k: pools.append(k) or ProcessPoolExecutor(*a, **k))
    sequential, parallel = tone_cache(tmp_path / "seq"), tone_cache(tmp_path / "par")
    one, bad_one = sequential.load(*tones, progress=False, workers=1)
    assert not pools
    two, bad_two = parallel.load(*tones, progress=False, workers=2)
    assert len(pools) == 1
    assert one.shape == (40, 32, 60) and parallel.computed == sequential.computed == 40
    np.testing.assert_allclose(two, one, atol=1e-5)
    assert list(bad_two) == list(bad_one) == [tones[0][17]]
    assert [r.getMessage().startswith(f"skipping {tones[0][17]}") for r in caplog.records] == [True, True]
    # the workers' entries are the cache: a third load reads them all
    again = tone_cache(tmp_path / "par")
    np.testing.assert_array_equal(again.load(*tones, progress=False, workers=2)[0], two)
    assert again.computed == 0


def test_parallel_load_rebuilds_only_the_missing_and_corrupt_entries(tmp_path, tones):
    cache = tone_cache(tmp_path)
    first, _ = cache.load(*tones, progress=False, workers=2)
    cache.entry(tones[0][3], tones[1][3]).write_bytes(b"junk")
    cache.entry(tones[0][30], tones[1][30]).unlink()
    again = tone_cache(tmp_path)
    second, _ = again.load(*tones, progress=False, workers=2)
    assert again.computed == 2
    np.testing.assert_array_equal(second, first)


def test_without_fork_an_unpicklable_transform_is_computed_in_process(monkeypatch):
    import esclab.features.cache as C

    monkeypatch.setattr(C.mp, "get_all_start_methods", lambda: ["spawn"])
    assert C._process_context(lambda wave, clip_id: wave) is None
    assert C._process_context(None).get_start_method() == "spawn"
    monkeypatch.undo()
    assert C._process_context(lambda wave, clip_id: wave).get_start_method() == "fork"


def test_native_rates_come_from_the_decoding_not_the_headers(tmp_path, tones, monkeypatch):
    import esclab.features.cache as C

    good = [p for p in tones[0] if not p.endswith("broken.wav")], [c for c in tones[1] if c != "broken"]
    tone_cache(tmp_path).load(*good, progress=False, workers=2)
    monkeypatch.setattr(C, "native_rate", lambda path: pytest.fail(f"read the header of {path}"))
    rates = tone_cache(tmp_path).native_rates(*good)
    assert rates == dict.fromkeys(good[0], 8000)


def test_native_rates_fall_back_to_headers_without_a_record(tmp_path, tones):
    good = [p for p in tones[0] if not p.endswith("broken.wav")][:3], [c for c in tones[1] if c != "broken"][:3]
    cache = tone_cache(tmp_path)
    cache.load(*good, progress=False)
    (cache.folder / "rates.json").write_text("{not json")  # damaged: each rate is read from its header
    assert tone_cache(tmp_path).native_rates(*good) == dict.fromkeys(good[0], 8000)
