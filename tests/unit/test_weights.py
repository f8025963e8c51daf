"""``resolve_weights`` finds release files by name, checks their sha256, and fails in one clear line.

No test touches the network or the real user cache: ``TORCH_HOME`` points into ``tmp_path`` and
``torch.hub.download_url_to_file`` is replaced in every test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.error
from pathlib import Path

import pytest
import torch.hub
from torch import nn

from esclab import weights
from esclab.models.pretrained import read_state_dict
from esclab.weights import KNOWN_WEIGHTS, WeightsError, resolve_weights, search_dirs, sha256_file

MN04_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"


def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """An empty user cache under ``tmp_path``, no ``$ESCLAB_WEIGHTS``, no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    cache = weights.cache_dir()
    assert cache == tmp_path / "torch" / "hub" / "esclab"
    return cache


@pytest.fixture
def downloads(monkeypatch) -> list[tuple[str, str | None]]:
    """A fake downloader writing ``b"weights v1"``; the list collects (url, hash_prefix) per call."""
    calls = []

    def fake(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(b"weights v1")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    return calls


def test_known_weights_table_is_consistent():
    for name, spec in KNOWN_WEIGHTS.items():
        width = name.removeprefix("efficientat:")
        assert spec.name == name and spec.filename.startswith(f"{width}_mAP_"), name
        assert (
            spec.url == f"https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/{spec.filename}"
        )
        assert spec.width_mult == int(width[2:4]) / 10
    assert KNOWN_WEIGHTS["efficientat:mn04_as"].sha256 == MN04_SHA256
    assert KNOWN_WEIGHTS["efficientat:mn40_as_ext"].width_mult == 4.0


def test_shared_file_resolves_with_published_sha256(isolated, shared_mn04):
    resolved = resolve_weights("efficientat:mn04_as")
    assert resolved.path == shared_mn04.resolve()
    assert resolved.sha256 == MN04_SHA256 == sha256_file(shared_mn04)
    assert resolved.spec.width_mult == 0.4
    assert not (isolated / weights.RECORD_NAME).exists()  # a published hash needs no record


def test_env_folder_takes_precedence(monkeypatch, tmp_path, isolated, shared_mn04):
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(shared_mn04, own / shared_mn04.name)
    monkeypatch.setenv(weights.ENV_VAR, str(own))
    assert search_dirs() == [own, shared_mn04.parent.resolve(), isolated]
    assert resolve_weights("efficientat:mn04_as").path == (own / shared_mn04.name).resolve()


def test_truncated_copy_is_refused_with_both_hashes(monkeypatch, tmp_path, shared_mn04):
    monkeypatch.setenv(weights.ENV_VAR, str(tmp_path))
    bad = tmp_path / shared_mn04.name
    bad.write_bytes(shared_mn04.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupt or changed") as err:
        resolve_weights("efficientat:mn04_as")
    message = str(err.value)
    assert str(bad) in message and MN04_SHA256 in message and sha256_file(bad) in message
    assert "delete it" in message and "\n" not in message


def test_unpublished_file_is_trusted_on_first_use_then_pinned(isolated, downloads, caplog):
    spec = KNOWN_WEIGHTS["efficientat:mn10_as"]
    first = resolve_weights(spec.name)
    expected = hashlib.sha256(b"weights v1").hexdigest()
    assert downloads == [(spec.url, None)]
    assert first.path == isolated / "mn10_as_mAP_471.pt" and first.sha256 == expected
    assert expected in caplog.text and "first use" in caplog.text
    caplog.clear()
    assert json.loads((isolated / weights.RECORD_NAME).read_text()) == {spec.filename: expected}

    assert resolve_weights(spec.name).sha256 == expected  # found in the cache: no download, no print
    assert len(downloads) == 1 and not caplog.records

    first.path.write_bytes(b"weights v2")
    with pytest.raises(WeightsError, match="recorded on first use") as err:
        resolve_weights(spec.name)
    assert expected in str(err.value) and hashlib.sha256(b"weights v2").hexdigest() in str(err.value)


def test_published_hash_is_passed_to_the_downloader(monkeypatch, tmp_path, isolated, shared_mn04):
    monkeypatch.setattr(weights, "shared_dir", lambda: tmp_path / "no-shared-folder")
    calls = []

    def fake(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append(hash_prefix)
        shutil.copy(shared_mn04, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    assert resolve_weights("efficientat:mn04_as").path == isolated / shared_mn04.name
    assert calls == [MN04_SHA256]


def test_offline_gives_one_line_naming_the_folders(monkeypatch):
    def offline(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    spec = KNOWN_WEIGHTS["efficientat:mn10_as"]
    with pytest.raises(WeightsError) as err:
        resolve_weights(spec.name)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{spec.name}: {spec.filename} not found in $ESCLAB_WEIGHTS (unset), ")
    assert all(str(d) in message for d in search_dirs())
    assert spec.url in message and "offline?" in message and "set ESCLAB_WEIGHTS" in message
    with pytest.raises(WeightsError, match="download=False"):
        resolve_weights(spec.name, download=False)
    with pytest.raises(WeightsError, match="offline") as through_loader:
        read_state_dict(nn.Linear(2, 2), spec.name)
    assert str(through_loader.value) == message


def test_unknown_name_lists_known_names():
    with pytest.raises(WeightsError, match="unknown pretrained weights 'efficientat:mn99_as'") as err:
        resolve_weights("efficientat:mn99_as")
    assert all(name in str(err.value) for name in KNOWN_WEIGHTS)


def test_read_state_dict_loads_a_named_release(shared_mn04):
    state = read_state_dict(nn.Linear(2, 2), "efficientat:mn04_as")
    assert len(state) == 312
    assert state["classifier.5.weight"].shape == (527, 512)
