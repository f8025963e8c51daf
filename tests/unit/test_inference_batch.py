"""Predicting many files: bad files give error rows, the others still get predictions; batched and parallel
results equal one file at a time; progress on stderr; CLI output and exit codes."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from esclab.cli import main
from esclab.inference import Predictor, collect_audio_files, predict_paths
from esclab.inference.batch import predict_clips
from esclab.inference.results import format_results
from tests.unit.test_inference import CLASSES, scorer_of, write_clip

BAD = ("empty.wav", "not_audio.wav", "truncated.flac", "nan.wav", "zero_length.wav")


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Three good clips (one in a subfolder, one upper-case .WAV) and one bad file of each kind."""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    write_clip(root / "a.wav", freq=300)
    write_clip(root / "sub" / "b.flac", seconds=0.7, sr=22050, freq=900)
    write_clip(root / "C.WAV", seconds=2.5, sr=16000, channels=2)
    (root / "empty.wav").write_bytes(b"")
    (root / "not_audio.wav").write_text("this is not audio\n" * 20)
    write_clip(root / "full.flac", seconds=1.0)
    data = (root / "full.flac").read_bytes()
    (root / "full.flac").unlink()
    (root / "truncated.flac").write_bytes(data[: len(data) // 2])
    wave = np.full(800, 0.1, np.float32)
    wave[10] = np.nan
    sf.write(root / "nan.wav", wave, 8000, subtype="FLOAT")
    sf.write(root / "zero_length.wav", np.zeros(0, np.float32), 8000)
    (root / "notes.txt").write_text("ignored: not an audio extension")
    return root


def test_folders_expand_to_supported_files_and_named_files_are_kept(mixed_folder: Path):
    files = collect_audio_files([mixed_folder, mixed_folder / "notes.txt"])
    names = sorted(p.name for p in files)
    assert names == sorted(["a.wav", "b.flac", "C.WAV", *BAD, "notes.txt"])


def test_bad_files_get_error_rows_and_the_others_predictions(bundle_path: Path, mixed_folder: Path):
    results = predict_paths(Predictor.from_checkpoint(bundle_path), [mixed_folder], top_k=2)
    by_name = {Path(r.file).name: r for r in results}
    assert len(results) == 8
    for name in ("a.wav", "b.flac", "C.WAV"):
        assert by_name[name].error is None and by_name[name].top_k[0].label in CLASSES
    for name in BAD:
        assert by_name[name].error and not by_name[name].top_k, name
    assert "NaN" in by_name["nan.wav"].error and "no samples" in by_name["zero_length.wav"].error


@pytest.mark.parametrize("options", [{}, {"activation": "sigmoid", "pooling": "max", "inputs": "whole"}],
                         ids=["predictor", "tagger-like"])
@pytest.mark.parametrize(("workers", "batch_size"), [(1, 1), (3, 2), (2, 32)])
def test_batched_parallel_clips_equal_one_file_at_a_time(bundle_path: Path, mixed_folder: Path, workers: int,
                                                         batch_size: int, options: dict[str, str]):
    scorer = scorer_of(bundle_path, **options)
    files = collect_audio_files([mixed_folder])
    results = list(predict_clips(scorer, files, top_k=3, workers=workers, batch_size=batch_size))
    assert [r.file for r in results] == [str(f) for f in files]
    assert all(r.scores == scorer.score_note for r in results)
    for path, result in zip(files, results, strict=True):
        if path.name in BAD:
            assert result.error and not result.top_k
            continue
        alone = scorer.predict_file(path, top_k=3)
        assert result.duration_s == pytest.approx(alone.duration_s) and result.error is None
        assert [s.label for s in result.top_k] == [s.label for s in alone.top_k]
        assert [s.score for s in result.top_k] == pytest.approx([s.score for s in alone.top_k], abs=1e-5)


def test_cli_predict_logs_progress_lines_off_a_terminal(bundle_path: Path, mixed_folder: Path, monkeypatch,
                                                        caplog: pytest.LogCaptureFixture, capsys):
    import esclab.progress

    monkeypatch.setattr(esclab.progress, "stderr_is_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="esclab"):
        main(["predict", "--checkpoint", str(bundle_path), str(mixed_folder), "--format", "json"])
    lines = [r.getMessage() for r in caplog.records if r.name == "esclab.progress"]
    assert lines and lines[-1].startswith("predict: 8/8 (100 %) · ") and "\r" not in capsys.readouterr().err


def test_cli_predict_exit_code_and_formats(bundle_path: Path, mixed_folder: Path, capsys: pytest.CaptureFixture):
    assert main(["predict", "--checkpoint", str(bundle_path), str(mixed_folder), "--format", "csv",
                 "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "predict: 8 clips (5 failed) in " in captured.err and "clips/s" in captured.err
    assert "predict:" not in captured.out
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 8 and all(row["file"] for row in rows)
    assert sum(bool(row["error"]) for row in rows) == len(BAD)
    good = [str(mixed_folder / "a.wav"), str(mixed_folder / "sub")]
    assert main(["predict", "--checkpoint", str(bundle_path), *good, "--format", "json", "--top-k", "1"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in records] == ["a.wav", "b.flac"]
    assert all(len(r["top_k"]) == 1 and r["error"] is None for r in records)
    assert all(s["score"] == s["probability"] for r in records for s in r["top_k"])  # the alias, until 0.3.0
    assert main(["predict", "--checkpoint", str(bundle_path), str(mixed_folder)]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["file", "label_1", "probability_1"]
    assert any(line.startswith(str(mixed_folder / "empty.wav")) and "ERROR:" in line for line in table)


def test_cli_predict_long_writes_segments_and_plots(bundle_path: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture):
    clip = write_clip(tmp_path / "long.wav", seconds=4.2)
    plots = tmp_path / "plots"
    args = ["predict", "--checkpoint", str(bundle_path), str(clip), "--long", "--window", "1", "--hop", "0.5",
            "--plot", str(plots), "--format", "json"]
    assert main(args) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert len(record["windows"]) == 8 and record["segments"][-1]["end_s"] == pytest.approx(4.2)
    assert (plots / "long.png").stat().st_size > 0
    assert main([*args[:-2], "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(record["segments"]) and rows[0]["start_s"] == "0.00"


def test_cli_reports_bad_checkpoints_and_windows(bundle_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    clip = write_clip(tmp_path / "a.wav")
    assert main(["predict", "--checkpoint", str(tmp_path / "missing.ckpt"), str(clip)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(bundle_path), str(clip), "--long", "--window", "5"]) == 2
    assert "clip length" in capsys.readouterr().err


def test_table_lists_one_row_per_file(bundle_path: Path, mixed_folder: Path):
    results = predict_paths(Predictor.from_checkpoint(bundle_path), [mixed_folder / "a.wav", mixed_folder / "x.wav"])
    lines = format_results(results, "table").splitlines()
    assert len(lines) == 3 and "ERROR: no such file" in lines[2]
