"""Does a fine-tuned mn04 add to the frozen linear probe? Validation accuracy of each alone and of their sum.

Two probes (standardised logistic regression, C = 1) are fitted on the frozen mn04 embeddings that
``probe_layers.py`` saved (``<scratch>/layer_feats.npz``): ``base`` (mean of the last layer) and ``taps``
(mean and max of the last layer and of layers 13 and 15). For each probe and each tag given, the
validation class probabilities that ``online.py tag=TAG`` saved (``<scratch>/valprobs_TAG.npy``) are
scored alone and summed with the probe's (an equal-weight ensemble).

Split: the inner split of outer fold 1's training folds, train on folds 2-4 and validate on fold 5 (the
fine-tuned runs must have validated on fold 5, ``online.py``'s default). Fold 1, the outer test fold, is
never trained on or scored.

Usage::

    python benchmarks/finetune_selection/ensemble_val.py I1 I2 scratch=/tmp/esclab_finetune_selection

Arguments with ``=`` are ``key=value`` settings (their defaults are in ``DEFAULTS``: all are paths, by
default next to this repository); the others are the tags of the fine-tuned runs to score.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from esclab.config import load_config
from esclab.data.prepare import PreparedData, prepare_data
from esclab.train.probe import fit_probe

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "configs" / "experiment" / "mn04_probe.yaml"
TRAIN_FOLDS = (2, 3, 4)
VAL_FOLD = 5

DEFAULTS = {
    "data": SHARED / "esc50",
    "cache": REPO / "cache" / "features",
    "scratch": Path("/tmp/esclab_finetune_selection"),
}

# probe embeddings: features of layer_feats.npz concatenated in this order
EMBEDDINGS = {
    "base": ["last_mean"],
    "taps": ["last_mean", "last_max", "b13", "b15"],
}


def parse_args(argv: list[str]) -> tuple[SimpleNamespace, list[str]]:
    """``key=value`` settings over ``DEFAULTS`` (paths) and the tags (the other arguments), in order.

    Unknown keys are ignored with a note on stderr.
    """
    options = dict(DEFAULTS)
    tags = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            tags.append(arg)
        elif key in DEFAULTS:
            options[key] = Path(value)
        else:
            print(f"ignoring unknown key {key!r}", file=sys.stderr)
    return SimpleNamespace(**options), tags


def load_data(root: Path, cache_dir: Path) -> PreparedData:
    """ESC-50's clip table and cached log-mels, with mn04_probe's front end."""
    cfg = load_config(CONFIG, [f"data.root={root}", f"features.cache_dir={cache_dir}"])
    return prepare_data(cfg, progress=False)


def main() -> None:
    opts, tags = parse_args(sys.argv[1:])
    data = load_data(opts.data, opts.cache)
    targets = data.table.clips["target"].to_numpy()
    folds = data.table.clips["fold"].to_numpy()
    feats = np.load(opts.scratch / "layer_feats.npz")
    train_idx = np.flatnonzero(np.isin(folds, TRAIN_FOLDS))
    val_idx = np.flatnonzero(folds == VAL_FOLD)
    val_targets = targets[val_idx]
    for name, keys in EMBEDDINGS.items():
        x = np.concatenate([feats[k] for k in keys], 1)
        probe_probs = fit_probe(x[train_idx], targets[train_idx], 1.0, 42).predict_proba(x[val_idx])
        print(name, "probe val", (probe_probs.argmax(1) == val_targets).mean())
        for tag in tags:
            tuned_probs = np.load(opts.scratch / f"valprobs_{tag}.npy")
            print("  +", tag, "alone", (tuned_probs.argmax(1) == val_targets).mean(),
                  "ensemble", ((probe_probs + tuned_probs).argmax(1) == val_targets).mean())


if __name__ == "__main__":
    main()
