"""atomic_write: a reader sees the old file or the new one, never part of one, whatever stops the writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from esclab.fsutil import atomic_write

ROOT = Path(__file__).resolve().parents[2]
OLD = [None, "the old content\n"]


def content(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def test_text_bytes_and_writer_callbacks(tmp_path):
    assert atomic_write(tmp_path / "new" / "a.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert atomic_write(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "c.npy", lambda fh: np.save(fh, np.arange(3)))
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.arange(3))
    atomic_write(tmp_path / "d.pt", lambda fh: torch.save({"w": torch.ones(2)}, fh))
    assert torch.equal(torch.load(tmp_path / "d.pt", weights_only=True)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "c.npy", "d.pt", "new"]


def test_the_file_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        assert atomic_write(tmp_path / "f", "x").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(umask)


@pytest.mark.parametrize("old", OLD)
def test_an_error_mid_write_leaves_the_old_file_or_none(tmp_path, old):
    path = tmp_path / "metrics.json"
    if old:
        path.write_text(old)

    def half(fh):
        fh.write(b'{"accuracy": 0.')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half)
    assert content(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if old else [])  # no temporary file left


@pytest.mark.parametrize("old", OLD)
def test_a_process_killed_mid_write_leaves_the_old_file_or_none(tmp_path, old):
    path = tmp_path / "metrics.json"
    if old:
        path.write_text(old)
    code = ("import os, signal\n"
            "from esclab.fsutil import atomic_write\n"
            "def half(fh):\n"
            "    fh.write(b'{\"accuracy\": 0.')\n"
            "    fh.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"atomic_write({str(path)!r}, half)\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                          timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert content(path) == old
    (left,) = [p for p in tmp_path.iterdir() if p != path]  # the half-written temporary file, under another name
    assert left.name.startswith(".metrics.json.") and left.read_bytes() == b'{"accuracy": 0.'
