"""`esclab features` against the plain librosa loop, both timed as whole processes (issue 18).

Each repetition starts a fresh process with an empty cache/output folder: (a) ``esclab features`` on
the paper CNN's features, (b) ``benchmarks/plain_pipeline.py features``. The audio files are read
once first so both see a warm page cache. Prints each time, the medians and their ratio, with the load.

The plain loop runs with ``OPENBLAS_NUM_THREADS=1``, its best case here: with OpenBLAS's default two
threads on a shared 2-core machine, librosa's mel matmul (``np.einsum``) spins and the loop takes
3-6x longer (113 s instead of ~20 s at load 3-4), which would flatter esclab.

Usage: python benchmarks/bench_features.py --data ../shared/esc50 [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLAIN_ENV = {"OPENBLAS_NUM_THREADS": "1"}


def warm_page_cache(data: Path) -> None:
    for path in (data / "audio").iterdir():
        path.read_bytes()


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds from start to exit of ``cmd`` (its output discarded; a failure stops the benchmark)."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", default="configs/experiment/paper_cnn.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    warm_page_cache(data)
    esclab = [sys.executable, "-m", "esclab.cli", "features", "--config", args.config, "--data", str(data)]
    plain = [sys.executable, str(HERE / "plain_pipeline.py"), "features", "--data", str(data)]
    times: dict[str, list[float]] = {"esclab": [], "plain": []}
    for rep in range(args.repeats):
        for name in times:  # alternate, so a change of load hits both
            tmp = Path(tempfile.mkdtemp(prefix=f"bench18-{name}-"))
            try:
                cmd = [*esclab, "--set", f"features.cache_dir={tmp}"] if name == "esclab" else [*plain, "--out", str(tmp)]
                before = load()
                seconds = wall(cmd, PLAIN_ENV if name == "plain" else None)
                times[name].append(seconds)
                print(f"{name} run {rep + 1}: {seconds:.2f} s ({before} before, {load()} after)", flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"esclab features: {min(times['esclab']):.2f}-{max(times['esclab']):.2f} s (median {med['esclab']:.2f}); "
          f"plain loop: {min(times['plain']):.2f}-{max(times['plain']):.2f} s (median {med['plain']:.2f}); "
          f"ratio of medians {med['esclab'] / med['plain']:.2f}")


if __name__ == "__main__":
    main()
