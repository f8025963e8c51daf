"""The model card: facts and Markdown from a synthetic run folder (licences, worst classes, confused pairs,
calibration or its absence), the card a bundle carries, and ``GET /model-card`` of the server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from esclab.bundle import load_bundle
from esclab.inference import Predictor
from esclab.model_card import (
    FOLDER_LICENCE,
    bundle_model_card,
    fold_card_facts,
    model_card_facts,
    read_card_facts,
    render_model_card,
    write_model_card,
)
from esclab.runs import RunDir
from esclab.serve import create_app
from esclab.weights import KNOWN_WEIGHTS
from tests.unit.test_inference import write_tiny_bundle

CLASSES = [f"c{i}" for i in range(8)]
F1 = [0.9, 0.2, 0.8, 0.1, 0.5, 0.95, 0.3, 0.4]  # worst five: c3, c1, c6, c7, c4
CALIBRATION = {"ece_before": 0.081, "ece_after": 0.023, "temperature": 1.5, "temperatures": {"1": 1.4, "2": 1.6},
               "reject_below": {"1": 0.31, "2": 0.29}, "false_rejection": 0.05, "test_rejected": 0.06,
               "accuracy_accepted": 0.93}
MN04 = KNOWN_WEIGHTS["efficientat:mn04_as"]


def fold_record(fold: int, accuracy: float, calibrated: bool) -> dict:
    record = {"fold": fold, "accuracy": accuracy, "macro_f1": accuracy - 0.02, "band_rate": None,
              "data_sample_rate": 44100, "parameters": 12345,
              "pretrained": {"name": MN04.name, "sha256": MN04.sha256, "loaded": 200, "skipped": {}, "missing": []}}
    if calibrated:
        record["calibration"] = {"temperature": 1.4, "reject_below": 0.31, "false_rejection": 0.05,
                                 "source": "leave-one-fold-out over the training folds", "n": 40}
    return record


def write_run(root: Path, dataset: str = "esc50", calibrated: bool = True) -> Path:
    """A finished run's folder as training writes it, with made-up numbers."""
    run = RunDir(root)
    root.mkdir(parents=True)
    config = {"name": "mn04_probe", "data": {"dataset": dataset, "csv": "labels.csv", "folds": [1, 2]},
              "audio": {"sample_rate": 32000, "duration": 5.0, "band_rate": None},
              "features": {"kind": "kaldi_logmel", "n_mels": 128, "frames": 500, "fmin": 0.0, "fmax": 15000.0},
              "model": {"name": "mn04", "pretrained": MN04.name, "kwargs": {}}, "train": {"mode": "probe"}}
    run.config.write_text(yaml.safe_dump(config))
    summary = {"name": "mn04_probe", "folds": {"1": fold_record(1, 0.80, calibrated), "2": fold_record(2, 0.90, calibrated)},
               "accuracy_mean": 0.85, "accuracy_std": 0.0707, "macro_f1_mean": 0.83, "macro_f1_std": 0.0707,
               "pooled_accuracy": 0.85, "truncated_folds": [], "n_clips": 80, "class_names": CLASSES,
               "calibration": CALIBRATION if calibrated else None}
    run.summary.write_text(json.dumps(summary))
    pd.DataFrame({"class": CLASSES, "precision": 0.5, "recall": 0.5, "f1": F1, "support": 10}).to_csv(
        run.per_class, index=False, float_format="%.4f")
    matrix = np.diag(np.full(len(CLASSES), 8))
    for (i, j), count in {(0, 1): 5, (2, 3): 4, (4, 5): 3, (6, 7): 2, (1, 0): 1, (3, 2): 1}.items():
        matrix[i, j] = count
    pd.DataFrame(matrix, index=CLASSES, columns=CLASSES).to_csv(run.confusion_csv)
    run.env.write_text(json.dumps({"sessions": [{"commit": "abc1234", "dirty": False}], "versions": {"esclab": "0.2.0"}}))
    return root


def test_the_card_states_the_data_and_weights_licences(tmp_path: Path):
    card = render_model_card(read_card_facts(write_run(tmp_path / "run")))
    assert "CC BY-NC 3.0 (Karol J. Piczak): non-commercial use only; models trained on it inherit the restriction" in card
    assert "**Non-commercial only**" in card
    assert MN04.licence in card and MN04.url in card and MN04.sha256 in card
    assert "32000 Hz" in card and "5.0 s" in card and "`kaldi_logmel`, 128 mel bands" in card
    assert "cannot report two sounds at once" in card and "`unknown` only through the rejection rule" in card


def test_a_folder_dataset_has_its_owners_licence_and_no_non_commercial_line(tmp_path: Path):
    facts = read_card_facts(write_run(tmp_path / "run", dataset="folder"))
    assert facts["data"]["licence"] == FOLDER_LICENCE and not facts["data"]["non_commercial"]
    card = render_model_card(facts)
    assert FOLDER_LICENCE in card and "Non-commercial only" not in card


def test_a_left_out_fold_is_stated_and_absent_otherwise(tmp_path: Path):
    plain = render_model_card(read_card_facts(write_run(tmp_path / "plain")))
    assert "Left out" not in plain
    root = write_run(tmp_path / "inner")
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["data"]["exclude_folds"] = [3]
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    card = render_model_card(read_card_facts(root))
    assert "- Left out: fold(s) 3 of the dataset, never read by this run" in card


def test_worst_classes_and_most_confused_pairs(tmp_path: Path):
    facts = read_card_facts(write_run(tmp_path / "run"))
    assert [r["class"] for r in facts["worst_classes"]] == ["c3", "c1", "c6", "c7", "c4"]
    assert [(p["true"], p["predicted"], p["count"]) for p in facts["confused_pairs"][:4]] == [
        ("c0", "c1", 5), ("c2", "c3", 4), ("c4", "c5", 3), ("c6", "c7", 2)]
    assert len(facts["confused_pairs"]) == 5 and all(p["true"] != p["predicted"] for p in facts["confused_pairs"])
    card = render_model_card(facts)
    assert "| c3 | 0.500 | 0.500 | 0.100 | 10 |" in card and "- `c0` -> `c1`: 5" in card


def test_metrics_with_their_spread_and_each_fold(tmp_path: Path):
    card = render_model_card(read_card_facts(write_run(tmp_path / "run")))
    assert "accuracy 85.0 % ± 7.1 %" in card and "macro-F1 83.0 % ± 7.1 %" in card
    assert "| 1 | 80.0 % | 78.0 % |" in card and "| 2 | 90.0 % | 88.0 % |" in card
    assert "commit `abc1234`" in card


def test_calibration_and_the_rejection_rule_when_present(tmp_path: Path):
    card = render_model_card(read_card_facts(write_run(tmp_path / "run")))
    assert "T = 1.500 (mean over folds; fold 1: 1.400, fold 2: 1.600)" in card
    assert "0.081 before, 0.023 after" in card
    assert "below its fold's threshold (fold 1: 0.310, fold 2: 0.290) is answered `unknown`" in card
    assert "turns away about 5.0 %" in card
    assert "Not calibrated" not in card


def test_not_calibrated_when_absent(tmp_path: Path):
    facts = read_card_facts(write_run(tmp_path / "run", calibrated=False))
    assert facts["calibration"] is None
    card = render_model_card(facts)
    assert "Not calibrated" in card and "every clip is answered with one of the known classes" in card


def test_write_model_card_writes_it_at_the_run_root(tmp_path: Path):
    root = write_run(tmp_path / "run")
    path = write_model_card(root)
    assert path == root / "MODEL_CARD.md" and path.read_text() == render_model_card(read_card_facts(root))


def test_an_ensembles_card_names_its_members_weights_and_no_machine_paths(tmp_path: Path):
    member = write_run(tmp_path / "member")
    ensemble = write_run(tmp_path / "ens", dataset="folder")
    config = yaml.safe_load(RunDir(ensemble).config.read_text())
    config["data"]["csv"] = str(tmp_path / "deep" / "labels.csv")
    config["model"] = {"name": "ensemble", "pretrained": None, "kwargs": {"members": [
        {"name": "mn04", "run": str(member), "mode": "probe"}, {"name": "cnn", "run": str(tmp_path / "gone"), "mode": "fit"}]}}
    RunDir(ensemble).config.write_text(yaml.safe_dump(config))
    summary = json.loads(RunDir(ensemble).summary.read_text())
    for record in summary["folds"].values():
        record.pop("pretrained")  # an ensemble fold records its members, not weights of its own
    RunDir(ensemble).summary.write_text(json.dumps(summary))
    facts = read_card_facts(ensemble)
    assert [(w["member"], w["licence"]) for w in facts["weights"]][0] == ("mn04", MN04.licence)
    assert facts["weights"][1]["member"] == "cnn" and "not readable" in facts["weights"][1]["licence"]
    card = render_model_card(facts)
    assert "Pretrained weights (member `mn04`): `efficientat:mn04_as`" in card and "run `member`" in card
    assert str(tmp_path) not in card and "(labels.csv)" in card


def test_model_card_facts_is_pure_and_tolerates_a_bare_summary():
    facts = model_card_facts({}, {"folds": {}, "class_names": ["a"]})
    assert facts["worst_classes"] == [] and facts["confused_pairs"] == [] and facts["weights"] == []
    card = render_model_card(facts)
    assert "none (trained from scratch" in card and FOLDER_LICENCE not in card  # no dataset named: not a folder


def test_a_bundle_carries_its_folds_card_and_old_bundles_still_load(tmp_path: Path):
    path = write_tiny_bundle(tmp_path / "old.ckpt")
    assert load_bundle(path).card == {}
    payload = torch.load(path, weights_only=True)
    payload.pop("card")  # as written before bundles carried one
    torch.save(payload, path)
    assert load_bundle(path).card == {}
    config = yaml.safe_load(RunDir(write_run(tmp_path / "run")).config.read_text())
    card = fold_card_facts(config, fold_record(2, 0.9, True), CLASSES)
    payload["card"] = card
    torch.save(payload, tmp_path / "new.ckpt")
    loaded = load_bundle(tmp_path / "new.ckpt").card
    assert loaded == card and loaded["metrics"] == {"fold": 2, "accuracy": 0.9, "macro_f1": pytest.approx(0.88)}
    text = render_model_card(loaded)
    assert "fold 2" in text and "not in a bundle" in text and "below 0.310" in text and "CC BY-NC 3.0" in text


def test_bundle_model_card_prefers_the_runs_card(tmp_path: Path):
    root = write_run(tmp_path / "run")
    bundle = write_tiny_bundle(root / "fold_2" / "model.ckpt")
    rendered = bundle_model_card(bundle, {})  # a run without MODEL_CARD.md yet: rendered from its numbers
    assert rendered.startswith("> Served: `fold_2/model.ckpt` of this run.") and "| 2 | 90.0 % |" in rendered
    write_model_card(root)
    assert bundle_model_card(bundle, {}).endswith((root / "MODEL_CARD.md").read_text())
    alone = write_tiny_bundle(tmp_path / "alone.ckpt")
    assert bundle_model_card(alone, {}) is None
    assert "# Model card: x" in bundle_model_card(alone, {"name": "x", "scope": "fold"})


def test_serve_links_and_answers_the_model_card(tmp_path: Path):
    root = write_run(tmp_path / "run")
    write_tiny_bundle(root / "fold_1" / "model.ckpt")
    write_model_card(root)
    client = TestClient(create_app(Predictor.from_checkpoint(root)))
    assert 'href="/model-card"' in client.get("/").text
    response = client.get("/model-card")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/markdown")
    assert "# Model card: mn04_probe" in response.text and "non-commercial use only" in response.text
    old = TestClient(create_app(Predictor.from_checkpoint(write_tiny_bundle(tmp_path / "alone.ckpt"))))
    missing = old.get("/model-card")
    assert missing.status_code == 404 and "no model card" in missing.json()["detail"]
