"""The weights carry their contract: architecture, rate, front end and labels stated once per known entry,
read by the config check and the tagger; partial pretrained loads stop unless asked, and say what they did."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from esclab.config import ConfigError, load_config
from esclab.inference import tagging
from esclab.models import create_model
from esclab.models.pretrained import PartialLoadError, load_pretrained
from esclab.weights import KNOWN_WEIGHTS, frontend_mismatch


def test_every_known_entry_states_its_architecture_rate_front_end_and_labels():
    for name, spec in KNOWN_WEIGHTS.items():
        assert spec.arch == f"mn{round(spec.width_mult * 10):02d}", name
        assert spec.sample_rate == 32000 and spec.frontend["kind"] == "kaldi_logmel"
        assert spec.labels == "audioset" and spec.num_classes == 527 and "MIT" in spec.licence


def test_the_tagger_reads_the_front_end_from_the_contract():
    spec = KNOWN_WEIGHTS[tagging.DEFAULT_WEIGHTS]
    assert spec.sample_rate == tagging.SAMPLE_RATE
    assert {k: getattr(tagging.FEATURES, k) for k in spec.frontend} == spec.frontend


def test_the_probe_config_matches_its_weights():
    cfg = load_config("configs/experiment/mn04_probe.yaml")
    assert frontend_mismatch(cfg.model.pretrained, cfg.audio.sample_rate, dataclasses.asdict(cfg.features)) is None


def test_audioset_weights_on_librosa_log_mels_stop_naming_both():
    with pytest.raises(ConfigError) as err:
        load_config("configs/experiment/base.yaml", ["model=mn04"])
    message = str(err.value)
    assert "efficientat:mn04_as" in message and "audio.sample_rate=32000" in message
    assert "features.kind=kaldi_logmel" in message and "features.kind=logmel" in message
    assert "audio.sample_rate=22050" in message


def test_unknown_weight_names_carry_no_contract():
    assert frontend_mismatch("/some/file.pt", 22050, {"kind": "logmel"}) is None
    assert frontend_mismatch(None, 22050, {"kind": "logmel"}) is None


def _body_only_file(tmp_path, drop: str):
    torch.manual_seed(0)
    state = create_model("paper_cnn", 5, input_size=(32, 32)).state_dict()
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith(drop)}, path)
    return path


def test_a_load_that_leaves_body_tensors_at_init_stops(tmp_path):
    path = _body_only_file(tmp_path, drop="blocks.0.")
    with pytest.raises(PartialLoadError, match="pretrained_partial"):
        create_model("paper_cnn", 5, input_size=(32, 32), pretrained=str(path))
    model = create_model("paper_cnn", 5, input_size=(32, 32), pretrained=str(path), pretrained_partial=True)
    facts = model.pretrained_report.facts()
    assert facts["name"] == str(path) and len(facts["sha256"]) == 64
    assert any(k.startswith("blocks.0.") for k in facts["missing"]) and facts["loaded"] > 0


def test_a_head_for_another_label_set_is_not_partial(tmp_path):
    path = _body_only_file(tmp_path, drop="classifier.")
    model = create_model("paper_cnn", 5, input_size=(32, 32), pretrained=str(path))
    assert all(k.startswith("classifier.") for k in model.pretrained_report.missing)
    report = load_pretrained(create_model("paper_cnn", 7, input_size=(32, 32)), str(path))
    assert not report.skipped
