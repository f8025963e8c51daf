"""The README's "Your own sounds" commands, run as written on a folder laid out as the README says.

The commands come from between the README's ``own-sounds`` markers; the test writes ``my_sounds/``
(clips under ``clips/``, a ``path,label`` CSV without a fold column) and ``new_recording.wav`` in a
fresh working directory that holds only a link to ``configs/``, so the CSV and its paths can only be
found through ``--data``. Only ``--no-report`` is appended (the report's robustness curves would take
minutes; ``tests/integration/test_report.py`` covers the report).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from esclab.weights import WeightsError, resolve_weights
from tests.conftest import tone

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- own-sounds:begin.*?-->\s*```bash\n(.*?)```\s*<!-- own-sounds:end -->", re.S)
CLASSES = {"doorbell": 440.0, "kettle": 1800.0, "hum": 110.0}
APPENDED = {"cv": ["--no-report"]}  # to keep the test short; the commands themselves are the README's


def readme_commands() -> list[list[str]]:
    """The ``esclab`` command lines between the README's markers, continuation lines joined."""
    block = BLOCK.search((ROOT / "README.md").read_text())
    assert block, "README.md lost its own-sounds markers"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip()]


def mn04_available() -> bool:
    try:
        resolve_weights("efficientat:mn04_as", download=False)
    except WeightsError:
        return False
    return True


def write_my_sounds(root: Path, per_class: int = 5, sr: int = 16000) -> None:
    """``root/clips/*.wav`` (noisy tones, one pitch per class, stereo for one class) and ``root/labels.csv``."""
    rng = np.random.default_rng(0)
    (root / "clips").mkdir(parents=True)
    rows = ["path,label"]
    for label, hz in CLASSES.items():
        for i in range(per_class):
            wave = tone(hz * rng.uniform(0.97, 1.03), 1.0, sr) + 0.02 * rng.standard_normal(sr).astype(np.float32)
            data = np.stack([wave, wave], axis=1) if label == "hum" else wave
            sf.write(root / "clips" / f"{label}_{i:02d}.wav", data, sr)
            rows.append(f"clips/{label}_{i:02d}.wav,{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.skipif(not mn04_available(), reason="the README's recipe needs the mn04_as weights (offline here)")
def test_readme_own_sounds_commands_run_as_written(tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    write_my_sounds(tmp_path / "my_sounds")
    sf.write(tmp_path / "new_recording.wav", tone(CLASSES["kettle"], 1.0, 16000), 16000)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    outputs = []
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["esclab", "cv"], ["esclab", "predict"]]
    for command in commands:
        args = [*command[1:], *APPENDED.get(command[1], [])]
        done = subprocess.run([sys.executable, "-m", "esclab.cli", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    run = tmp_path / "runs" / "my_sounds"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_clips"] == 15 and summary["skipped"] == 0
    assert sorted(summary["class_names"]) == sorted(CLASSES)
    assert list(summary["folds"]) == ["1", "2", "3", "4", "5"]  # made without a fold column: 5 stratified folds
    assert summary["accuracy_mean"] > 0.9
    cv_out, predict_out = outputs
    assert f"run folder {Path('runs/my_sounds')}" in cv_out and "fold 5: accuracy" in cv_out
    (row,) = [line for line in predict_out.splitlines() if "new_recording.wav" in line]
    assert row.split()[1] == "kettle"
