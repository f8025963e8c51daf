"""`esclab report` and `esclab compare` end to end on tiny runs trained here (about 10 s each)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from esclab.cli import main
from esclab.config import load_config
from esclab.evaluate.report import build_report
from esclab.train.cv import run_cv
from tests.conftest import TINY_OVERRIDES, write_tone_dataset


def make_tiny_run(root: Path, name: str, *overrides: str) -> Path:
    """Cross-validate the tiny paper CNN on a tone dataset under ``root``; returns the run folder."""
    csv = root / "tones" / "labels.csv"
    if not csv.is_file():
        write_tone_dataset(root / "tones")
    cfg = load_config("configs/experiment/paper_cnn.yaml",
                      [*TINY_OVERRIDES, f"data.csv={csv}", f"features.cache_dir={root / 'cache'}", *overrides])
    out = run_cv(cfg, root / name, progress=False).out_dir
    build_report(out)
    return out


class PageParser(HTMLParser):
    """Collects the tags and attributes the checks need."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.gallery_images: list[str] = []
        self.audio: list[str] = []
        self.resources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            (self.figures if "data-figure" in a else self.gallery_images).append(a.get("data-figure") or "")
        if tag == "audio":
            self.audio.append(a.get("src") or "")
        self.resources += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return make_tiny_run(root, "run_a"), make_tiny_run(root, "run_b", "train.seed=7")


@pytest.fixture(scope="module")
def report(runs) -> tuple[Path, PageParser, dict]:
    assert main(["report", str(runs[0]), "--robustness-clips", "4", "--max-gallery", "3"]) == 0
    html = runs[0] / "report.html"
    return html, parse(html), json.loads((runs[0] / "report.json").read_text())


def test_report_has_one_image_per_figure_and_playable_mistakes(report):
    html, page, data = report
    assert sorted(page.figures) == sorted(data["figures"])
    assert {"fold_scores", "training_curves", "confusion_counts", "confusion_normalized", "prediction_bias",
            "robustness"} <= set(page.figures)
    items = data["sections"]["gallery"]["items"]
    assert 0 < len(items) <= 3
    assert len(page.gallery_images) == len(page.audio) == len(items)
    assert all(src.startswith("data:audio/ogg;base64,") for src in page.audio)


def test_report_is_self_contained(report):
    html, page, _ = report
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert page.resources and all(r.startswith("data:") for r in page.resources)


def test_report_numbers_match_the_run(runs, report):
    _, _, data = report
    n_test = sum(len(pd.read_csv(p)) for p in runs[0].glob("fold_*/predictions.csv"))
    confusion = data["figures"]["confusion_counts"]["matrix"]
    assert sum(map(sum, confusion)) == n_test
    robust = data["figures"]["robustness"]
    assert robust["n_clips"] == 8  # 4 per fold, 2 folds
    assert robust["snr_labels"][0] == "clean" and robust["snr_db"][0] is None
    assert len(robust["pooled"]["speed"]) == len(robust["rates"]) == 5


def test_report_without_robustness_to_another_file(runs, tmp_path):
    out = tmp_path / "r" / "page.html"
    assert main(["report", str(runs[0]), "--out", str(out), "--no-robustness", "--max-gallery", "0"]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert "robustness" not in data["figures"] and "robustness" not in data["sections"]
    assert sorted(parse(out).figures) == sorted(data["figures"])


def test_compare_two_runs(runs, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    page = parse(out)
    assert sorted(page.figures) == sorted(data["figures"]) == ["accuracy", "per_class_accuracy"]
    (pair,) = data["sections"]["tests"]["pairs"]
    assert pair["n"] == 2 and pair["folds"] == [1, 2]
    assert "http://" not in out.read_text() and "https://" not in out.read_text()


def test_report_shows_provenance_and_the_run_name_not_a_machine_path(runs):
    html = (runs[0] / "report.html").read_text()
    data = json.loads((runs[0] / "report.json").read_text())
    env = json.loads((runs[0] / "env.json").read_text())
    assert data["run"] == "run_a" and str(runs[0].resolve()) not in html
    assert "Provenance" in html and data["sections"]["provenance"]["machine"]["cpu"] == env["machine"]["cpu"]
    assert "torch " + env["versions"]["torch"] in html


def test_compare_refuses_runs_tested_on_different_clips_or_says_how(runs, tmp_path, capsys):
    one_fold = make_tiny_run(runs[0].parent, "run_fold1", "data.folds=[1]")
    out = tmp_path / "compare.html"
    assert main(["compare", str(runs[0]), str(one_fold), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "tested on different clips" in err and "only in run_a" in err and "--allow-different-tests" in err
    assert main(["compare", str(runs[0]), str(one_fold), "--out", str(out), "--allow-different-tests"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["test_set_differences"]
    assert "tested on different clips" in out.read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["compare", str(tmp_path / "missing"), "--out", str(tmp_path / "c.html")]) == 2
    assert "esclab compare: error" in capsys.readouterr().err
