"""Which layers of the frozen mn04 make the best linear-probe embedding? Inner-CV accuracy per candidate.

EfficientAT's mn04 with its AudioSet weights and MLP head (527 classes, BatchNorm folded) embeds every
clip once, keeping the mean and max over the map of layers 11, 13 and 15, the mean and the max of the last
layer, the MLP head's hidden activations and the AudioSet logits. Each candidate embedding (a concatenation
of some of these) is scored by a standardised logistic regression (C = 1) over the inner splits of outer
fold 1's training folds: leave one of folds 2-5 out for validation and train on the other three (among
them train folds 2-4, validate on fold 5). Fold 1, the outer test fold, is embedded with every clip but
never trained on or scored. Prints one line per candidate: its width, mean accuracy, the four per-fold
accuracies and the time taken.

The embeddings are saved to ``<scratch>/layer_feats.npz``, which ``ensemble_val.py`` reads.

Usage::

    python benchmarks/finetune_selection/probe_layers.py scratch=/tmp/esclab_finetune_selection

Keys (``key=value``) and their defaults are in ``DEFAULTS``: all are paths, by default next to this
repository.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
from common import INNER_FOLDS, PATHS, create_mn04, fit_inner_probe, parse_key_values, start_run

from esclab.models import prepare_for_inference

TEST_FOLD = 1
TAPS = (11, 13, 15)  # layers whose mean and max pooled maps are kept

DEFAULTS = dict(PATHS)

# candidate embeddings: the saved features concatenated in this order
CANDIDATES = {
    "base": ["last_mean"],
    "meanmax": ["last_mean", "last_max"],
    "hidden": ["hidden"],
    "base+hidden": ["last_mean", "hidden"],
    "meanmax+b15": ["last_mean", "last_max", "b15"],
    "meanmax+b13+b15": ["last_mean", "last_max", "b13", "b15"],
    "all": ["last_mean", "last_max", "b11", "b13", "b15", "hidden"],
}


def parse_options(argv: list[str]) -> SimpleNamespace:
    """``key=value`` arguments over ``DEFAULTS`` (paths); unknown keys are ignored with a note on stderr."""
    return SimpleNamespace(**parse_key_values(argv, DEFAULTS))


def layer_features(model: torch.nn.Module, specs: np.ndarray) -> dict[str, np.ndarray]:
    """``(N, 128, T)`` log-mels -> ``(N, D)`` features per name: ``b<layer>`` (mean and max of a tapped
    layer's map), ``last_mean``, ``last_max``, ``hidden`` (the MLP head's hidden layer) and ``logits``."""
    out = {key: [] for key in [*(f"b{tap}" for tap in TAPS), "last_mean", "last_max", "hidden", "logits"]}
    with torch.inference_mode():
        for i in range(0, len(specs), 32):
            h = torch.from_numpy(specs[i:i + 32]).unsqueeze(1)
            for j, layer in enumerate(model.features):
                h = layer(h)
                if j in TAPS:
                    out[f"b{j}"].append(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))
            out["last_mean"].append(h.mean((2, 3)))
            out["last_max"].append(h.amax((2, 3)))
            # classifier: pool, flatten, [2] linear, [3] hardswish, [4] dropout (idle in eval), [5] linear
            hidden = model.classifier[3](model.classifier[2](h.mean((2, 3))))
            out["hidden"].append(hidden)
            out["logits"].append(model.classifier[5](hidden))
    return {key: torch.cat(value).numpy() for key, value in out.items()}


def inner_cv_accuracies(x: np.ndarray, targets: np.ndarray, folds: np.ndarray) -> list[float]:
    """Probe accuracy on each inner fold 2-5, trained on the other three (fold 1 left out)."""
    accuracies = []
    for val_fold in INNER_FOLDS:
        train_idx = np.flatnonzero(~np.isin(folds, [TEST_FOLD, val_fold]))
        val_idx = np.flatnonzero(folds == val_fold)
        probe = fit_inner_probe(x[train_idx], targets[train_idx])
        accuracies.append((probe.predict(x[val_idx]) == targets[val_idx]).mean())
    return accuracies


def main() -> None:
    opts = parse_options(sys.argv[1:])
    data, targets, folds = start_run(opts)
    model = create_mn04(opts.weights, num_classes=527, head="mlp")
    model = prepare_for_inference(model)

    started = time.time()
    feats = layer_features(model, data.specs)
    print("embed", time.time() - started, {k: v.shape for k, v in feats.items()}, flush=True)
    np.savez(opts.scratch / "layer_feats.npz", **feats)

    for name, keys in CANDIDATES.items():
        x = np.concatenate([feats[k] for k in keys], 1)
        started = time.time()
        accs = inner_cv_accuracies(x, targets, folds)
        print(f"{name:20s} dim {x.shape[1]:5d} inner acc {np.mean(accs):.4f} {np.round(accs, 3)} "
              f"{time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
