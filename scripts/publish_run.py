"""Copy a finished run's report and the numbers behind it into the repository, without the models.

Writes ``DEST/report.html``, ``report.json``, ``summary.json``, ``env.json``, ``config.yaml``, ``MODEL_CARD.md``,
``skipped_files.csv``, ``confusion_matrix.csv``, ``per_class_report.csv`` and, per fold,
``fold_K/metrics.json``, ``fold_K/split.csv.gz`` and ``fold_K/predictions.csv.gz`` (gzip'd: every
headline number can be re-derived from them, and ``esclab compare`` reads such a folder).

Usage: ``python scripts/publish_run.py runs/mn04_probe docs/example-run [--max-html-mb 3]``;
``--numbers-only`` publishes a run without a report (``docs/results/NAME``: the files above but the report).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

RUN_FILES = ("report.html", "report.json", "summary.json", "env.json", "config.yaml", "MODEL_CARD.md", "skipped_files.csv",
             "confusion_matrix.csv", "per_class_report.csv")
FOLD_FILES = ("metrics.json",)
GZIPPED = ("predictions.csv", "split.csv")


def gzip_file(source: Path, dest: Path) -> None:
    # mtime=0: the same file gives the same bytes, so a republished run does not churn git history.
    with source.open("rb") as raw, gzip.GzipFile(dest, "wb", mtime=0) as packed:
        shutil.copyfileobj(raw, packed)


def publish(run: Path, dest: Path, max_html_mb: float, numbers_only: bool = False) -> None:
    if not (run / "summary.json").is_file():
        raise SystemExit(f"{run} is not a finished run (no summary.json)")
    html = run / "report.html"
    if not numbers_only and not html.is_file():
        raise SystemExit(f"{run} has no report.html: run `esclab report {run}` first, or pass --numbers-only")
    size_mb = html.stat().st_size / 2**20 if not numbers_only else 0.0
    if size_mb > max_html_mb:
        raise SystemExit(f"{html} is {size_mb:.1f} MB, over the {max_html_mb} MB budget: rebuild it with "
                         f"`esclab report {run} --max-gallery 8`")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        if numbers_only and name.startswith("report."):
            continue
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
    for fold in sorted(run.glob("fold_*")):
        (dest / fold.name).mkdir()
        for name in FOLD_FILES:
            shutil.copy2(fold / name, dest / fold.name / name)
        for name in GZIPPED:
            if (fold / name).is_file():
                gzip_file(fold / name, dest / fold.name / f"{name}.gz")
    total = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 2**20
    print(f"published {run} -> {dest}: {total:.1f} MB (report.html {size_mb:.1f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--max-html-mb", type=float, default=3.0)
    parser.add_argument("--numbers-only", action="store_true", help="no report: the numbers and their evidence")
    args = parser.parse_args()
    publish(args.run, args.dest, args.max_html_mb, args.numbers_only)


if __name__ == "__main__":
    sys.exit(main())
