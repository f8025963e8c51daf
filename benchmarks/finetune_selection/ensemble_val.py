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
from types import SimpleNamespace

import numpy as np
from common import PATHS, fit_inner_probe, inner_split, load_clips, parse_key_values

VAL_FOLD = 5  # the inner split trains on folds 2-4

DEFAULTS = {key: PATHS[key] for key in ("data", "cache", "scratch")}

# probe embeddings: features of layer_feats.npz concatenated in this order
EMBEDDINGS = {
    "base": ["last_mean"],
    "taps": ["last_mean", "last_max", "b13", "b15"],
}


def parse_args(argv: list[str]) -> tuple[SimpleNamespace, list[str]]:
    """``key=value`` settings over ``DEFAULTS`` (paths) and the tags (the other arguments), in order.

    Unknown keys are ignored with a note on stderr.
    """
    tags = []
    options = parse_key_values(argv, DEFAULTS, tags)
    return SimpleNamespace(**options), tags


def main() -> None:
    opts, tags = parse_args(sys.argv[1:])
    _, targets, folds = load_clips(opts)
    feats = np.load(opts.scratch / "layer_feats.npz")
    train_idx, val_idx = inner_split(folds, VAL_FOLD)
    val_targets = targets[val_idx]
    for name, keys in EMBEDDINGS.items():
        x = np.concatenate([feats[k] for k in keys], 1)
        probe_probs = fit_inner_probe(x[train_idx], targets[train_idx]).predict_proba(x[val_idx])
        print(name, "probe val", (probe_probs.argmax(1) == val_targets).mean())
        for tag in tags:
            tuned_probs = np.load(opts.scratch / f"valprobs_{tag}.npy")
            print("  +", tag, "alone", (tuned_probs.argmax(1) == val_targets).mean(),
                  "ensemble", ((probe_probs + tuned_probs).argmax(1) == val_targets).mean())


if __name__ == "__main__":
    main()
