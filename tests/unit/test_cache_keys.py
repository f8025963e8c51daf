"""Cache keys cover what determines the numbers: settings, weights and the code that computes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from esclab.config import load_config
from esclab.features import cache
from esclab.provenance import source_fingerprint
from esclab.train import probe


def test_source_fingerprint_follows_the_files(tmp_path: Path, monkeypatch):
    package = tmp_path / "fp_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "math.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = source_fingerprint("fp_pkg")
    assert source_fingerprint("fp_pkg") == before and len(before) == 16
    (package / "math.py").write_text("X = 2\n")
    assert source_fingerprint("fp_pkg") != before
    assert source_fingerprint("fp_pkg.math") != source_fingerprint("fp_pkg")
    with pytest.raises(ValueError, match="no source"):
        source_fingerprint("sys")


def test_feature_key_changes_with_the_front_end_code(monkeypatch):
    cfg = load_config("configs/experiment/mn04_probe.yaml")
    key = cache.cache_key(cfg.audio, cfg.features)
    monkeypatch.setattr(cache, "FRONTEND_CODE", "another front end")
    assert cache.cache_key(cfg.audio, cfg.features) != key


def test_embedding_key_changes_with_the_embedding_code_and_the_front_end(monkeypatch):
    cfg = load_config("configs/experiment/mn04_probe.yaml")
    monkeypatch.setattr(probe, "weights_fingerprint", lambda spec: "sha")
    key = probe.embedding_key(cfg, ["a"], ["f"])
    assert probe.embedding_key(cfg, ["a"], ["f"]) == key
    monkeypatch.setattr(probe, "source_fingerprint", lambda *modules: "other code")
    changed_code = probe.embedding_key(cfg, ["a"], ["f"])
    assert changed_code != key
    monkeypatch.setattr(cache, "FRONTEND_CODE", "another front end")
    assert probe.embedding_key(cfg, ["a"], ["f"]) != changed_code
