"""`esclab features` and `esclab predict` stay cheap to start: they import no library they do not use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("lightning", "sklearn", "transformers", "timm", "audiomentations", "esclab.models", "esclab.train", "librosa",
         "matplotlib")


def run_cli(args: list[str], modules: tuple[str, ...]) -> subprocess.CompletedProcess:
    """``esclab ARGS`` in a fresh interpreter; stdout ends with ``loaded [...]``: which of ``modules`` it imported."""
    code = ("import sys; from esclab.cli import main; "
            f"rc = main({args!r}); print('loaded', sorted(m for m in {modules!r} if m in sys.modules)); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def test_features_command_imports_nothing_heavy(tiny_overrides, tmp_path):
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    done = run_cli(["features", "--config", "configs/experiment/paper_cnn.yaml", *sets], HEAVY)
    assert done.returncode == 0, done.stderr
    assert "12 clips cached" in done.stdout
    assert "loaded []" in done.stdout


def test_predict_loads_only_the_model_family_it_runs(tone_dataset, tmp_path):
    """A paper-CNN bundle: no Lightning, transformers, timm or torchvision before the first result."""
    from tests.unit.test_inference import write_tiny_bundle

    tiny_bundle = write_tiny_bundle(tmp_path / "model.ckpt")
    clip = next((tone_dataset.parent / "audio").glob("*.wav"))
    heavy = ("lightning", "transformers", "timm", "torchvision", "sklearn", "matplotlib", "librosa", "pandas")
    done = run_cli(["predict", "--checkpoint", str(tiny_bundle), str(clip)], heavy)
    assert done.returncode == 0, done.stderr
    assert "loaded []" in done.stdout
