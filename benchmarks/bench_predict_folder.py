"""Folder prediction: ``esclab predict FOLDER`` against the plain pipeline, on the same clips in the same run.

Usage: python benchmarks/bench_predict_folder.py --checkpoint CKPT --data ../shared/esc50 [--clips 400]
       [--workers N] [--repeats 1]

The first ``--clips`` files of ``DATA/audio`` (sorted) are linked into a temporary folder and
read once, so both runs find them in the page cache. Then, ``--repeats`` times:

* ``plain``: :class:`plain_pipeline.PlainPipeline`, one file at a time in this process (model
  loaded and 20 clips run before the clock starts), with torch's default threads and again with
  one thread (batch-1 forward passes with two threads suffer badly when another process holds
  a core: each of their many parallel regions waits for the descheduled thread);
* ``esclab``: ``esclab predict FOLDER --format csv`` in a subprocess; its own stderr line gives
  clips/s from the first clip to the last (model loaded), and the wall time of the whole
  command (Python start, imports, model load) gives an end-to-end rate too.

Printed as JSON: clips/s of each, the ratio esclab / plain, how often the two agree on the top
class (they compute the same log-mel and model; a mismatch beyond float noise would mean the
comparison is unfair), the load average before and after, and the machine.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from plain_pipeline import PlainPipeline

from esclab.provenance import cpu_model

RATE_LINE = re.compile(r"predict: (\d+) clips \((\d+) failed\) in ([\d.]+) s, ([\d.]+) clips/s")


def clip_folder(data: Path, clips: int, into: Path) -> list[Path]:
    """Links to the first ``clips`` audio files of ``data/audio`` (or ``data``) in ``into``; read once."""
    source = data / "audio" if (data / "audio").is_dir() else data
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".ogg", ".wav", ".flac"))[:clips]
    links = []
    for path in files:
        link = into / path.name
        link.symlink_to(path.resolve())
        link.read_bytes()
        links.append(link)
    return links


def run_plain(pipeline: PlainPipeline, files: list[Path], warmup: int = 20) -> tuple[float, dict[str, str]]:
    for path in files[:warmup]:  # without it the first pass ran 4x slower (allocator and oneDNN caches)
        pipeline.probabilities(path)
    start = time.perf_counter()
    top = {p.name: pipeline.class_names[int(pipeline.probabilities(p).argmax())] for p in files}
    return len(files) / (time.perf_counter() - start), top


def run_esclab(checkpoint: str, folder: Path, workers: int | None) -> dict:
    command = [sys.executable, "-m", "esclab.cli", "predict", "--checkpoint", checkpoint, str(folder),
               "--format", "csv", "--top-k", "1"] + (["--workers", str(workers)] if workers else [])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    match = RATE_LINE.search(done.stderr)
    if done.returncode not in (0, 1) or match is None:
        raise RuntimeError(f"esclab predict failed ({done.returncode}): {done.stderr[-2000:]}")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    return {"clips": int(match[1]), "failed": int(match[2]), "clips_per_s": float(match[4]),
            "end_to_end_clips_per_s": int(match[1]) / wall, "wall_s": wall, "stderr_line": match[0],
            "top": {Path(r["file"]).name: r["label_1"] for r in rows}}


def bench(checkpoint: str, data: Path, clips: int, workers: int | None, repeats: int) -> dict:
    load_before = os.getloadavg()
    pipeline = PlainPipeline(checkpoint)
    runs = []
    with tempfile.TemporaryDirectory(prefix="esclab-bench-") as tmp:
        files = clip_folder(data, clips, Path(tmp))
        threads = torch.get_num_threads()
        for _ in range(repeats):
            torch.set_num_threads(1)
            plain_1_thread, _ = run_plain(pipeline, files)
            torch.set_num_threads(threads)
            plain_rate, plain_top = run_plain(pipeline, files)
            esclab = run_esclab(checkpoint, Path(tmp), workers)
            agree = sum(esclab["top"].get(name) == label for name, label in plain_top.items()) / len(plain_top)
            runs.append({"plain_clips_per_s": plain_rate, "esclab_clips_per_s": esclab["clips_per_s"],
                         "ratio": esclab["clips_per_s"] / plain_rate,
                         "plain_1_thread_clips_per_s": plain_1_thread,
                         "ratio_to_plain_1_thread": esclab["clips_per_s"] / plain_1_thread,
                         "esclab_end_to_end_clips_per_s": esclab["end_to_end_clips_per_s"],
                         "end_to_end_ratio": esclab["end_to_end_clips_per_s"] / plain_rate,
                         "esclab_wall_s": esclab["wall_s"], "esclab_failed": esclab["failed"],
                         "esclab_stderr": esclab["stderr_line"], "top1_agreement": agree})
    return {"date": date.today().isoformat(), "checkpoint": checkpoint, "model": pipeline.model.__class__.__name__,
            "clips": len(files), "clip_seconds": pipeline.audio.duration, "workers": workers or "default",
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": cpu_model(), "load_before": load_before,
            "load_after": os.getloadavg(), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="bundle .ckpt or run folder (best fold)")
    parser.add_argument("--data", type=Path, required=True, help="ESC-50 folder (its audio/) or a folder of clips")
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--workers", type=int, help="esclab predict --workers (default: its own)")
    parser.add_argument("--repeats", type=int, default=1, help="plain + esclab pairs, alternating")
    args = parser.parse_args()
    print(json.dumps(bench(args.checkpoint, args.data, args.clips, args.workers, args.repeats), indent=2))


if __name__ == "__main__":
    main()
