"""What `esclab` prints: its own lines and real warnings; Lightning's chatter only with -v; help without a command."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from esclab.cli import main
from esclab.console import LIGHTNING_LOGGERS, configure_console

ROOT = Path(__file__).resolve().parents[2]
CHATTER = ["GPU available", "TPU available", "litlogger", "LeafSpec", "smaller than the logging interval",
           "Be aware that when using `ckpt_path`"]


def esclab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "esclab.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture
def cv_args(tiny_overrides, tmp_path) -> list[str]:
    sets = [arg for o in [*tiny_overrides, "data.folds=[1]"] for arg in ("--set", o)]
    return ["cv", "--config", str(ROOT / "configs/experiment/paper_cnn.yaml"), "--no-report", *sets]


def test_cv_prints_its_own_lines_and_no_lightning_chatter(cv_args, tmp_path):
    done = esclab(*cv_args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    for line in ("model paper_cnn (fit) on folder data", f"run folder {tmp_path / 'run'}", "fold 1: accuracy"):
        assert line in done.stdout
    assert not [c for c in CHATTER if c in console], console


def test_verbose_brings_lightning_back(cv_args, tmp_path):
    done = esclab("-v", *cv_args, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert "GPU available" in console and "smaller than the logging interval" in console


def test_other_warnings_still_show():
    levels = {name: logging.getLogger(name).level for name in LIGHTNING_LOGGERS}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            configure_console(verbose=False)
            warnings.warn("The number of training batches (3) is smaller than the logging interval", UserWarning,
                          stacklevel=1)
            warnings.warn("a real problem", UserWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == ["a real problem"]
        assert all(logging.getLogger(name).level == logging.WARNING for name in LIGHTNING_LOGGERS)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: esclab") and "cv" in out and "predict" in out and "error" not in out
