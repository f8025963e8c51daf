"""The inner cross-validation data of issue 23: ESC-50 without one official fold, as a folder-dataset CSV.

Usage: python benchmarks/finetune_selection/inner_cv/make_inner_csv.py --data ../shared/esc50 --outer-fold 1 \
           --out /tmp/inner/esc50_inner.csv

Writes ``path,label,fold,group`` (path relative to ``--data``, label = the ESC-50 category, fold = the official
fold, group = the source recording ``src_file``) for every clip outside ``--outer-fold``, so that

    esclab cv --config CONFIG --set data.dataset=folder --set data.root=DATA --set data.csv=OUT \
        --set "data.folds=[2,3,4,5]" ...

trains on three of the four remaining official folds and tests on the fourth, and never reads the outer fold.
The audio file's extension is whatever the copy holds (``.wav`` officially, ``.ogg`` in ``../shared/esc50``).

The library now does the same in one command, ``esclab cv --exclude-folds 1 --folds 2,3,4,5`` (``data.exclude_folds``;
on the real inner data it gives this route's predictions, ``benchmarks/RESULTS.md`` issue 23 section 8). This script
stays because the inner runs published beside it were made with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from esclab.data.table import find_audio


def inner_rows(meta: pd.DataFrame, audio: Path, outer_fold: int) -> pd.DataFrame:
    """The CSV rows for every clip of ``meta`` (the official metadata) outside ``outer_fold``."""
    kept = meta[meta["fold"] != outer_fold]
    paths = []
    for name in kept["filename"]:
        found = find_audio(audio, name)  # the metadata says .wav; a copy may hold .ogg or .flac
        if found is None:
            raise FileNotFoundError(f"no audio file for {name} in {audio}")
        paths.append(f"audio/{found.name}")
    return pd.DataFrame({"path": paths, "label": kept["category"].to_numpy(), "fold": kept["fold"].to_numpy(),
                         "group": kept["src_file"].to_numpy()})


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/esc50"), help="ESC-50 root (meta/, audio/)")
    parser.add_argument("--outer-fold", type=int, default=1, help="the official fold left out (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    rows = inner_rows(pd.read_csv(args.data / "meta" / "esc50.csv"), args.data / "audio", args.outer_fold)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(args.out, index=False)
    print(f"{args.out}: {len(rows)} clips, folds {sorted(int(f) for f in rows['fold'].unique())}")
    return args.out


if __name__ == "__main__":
    main()
