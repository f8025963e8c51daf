"""Fine-tune mn04's last layers from cached maps of its frozen first layers, with the BatchNorm statistics
kept or re-estimated and with or without distillation from the linear probe; inner cross-validation.

EfficientAT's mn04 (AudioSet weights) with a linear head on the mean and max of layers 13, 15 and the last
(the probe's embedding) keeps its first ``start`` layers frozen. Their output maps are computed once for
the clean log-mels and for ``variants`` augmented copies (gain in +-6 dB on the mel power, time roll of up
to +-12 frames; ``cached_maps.gain_and_roll``, numpy seed 123) and saved to ``<scratch>/maps_S<start>_V<variants>.pt``.
The layers from ``start`` on and a new head train on them for ``epochs`` epochs: Adam (``lr`` for the layers,
``headlr`` for the head, one epoch of warm-up then cosine to zero), batches of 32 that take a random one
of each clip's ``variants + 1`` maps, roll it by up to +-``roll`` time steps and mix it (mixup,
Beta(``mixup``, ``mixup``), soft targets). ``bneval=1`` keeps every BatchNorm's running statistics (eval
mode; their scale and shift still train). ``kd`` > 0 blends the loss with Hinton's soft-target loss
(temperature ``kdT``) against the teacher: the pretrained network with the training folds' linear probe
(standardised logistic regression, ``pc``) as its head, fed the same augmented, mixed maps.

Split: inner cross-validation over outer fold 1's training folds: for each fold in ``vals`` (of 2-5), train
on the other three of folds 2-5 and validate on it. Fold 1 is never trained on or scored. Printed per fold:
the probe's validation accuracy, the fine-tune's after its last epoch, ``swa`` (the mean of the last
``swa`` epochs' weights; with ``bneval=0`` the statistics are re-estimated on the clean training maps) and
``ens`` (probe + fine-tune, mean of probabilities); the ``SUMMARY`` line averages them over ``vals``.

Usage::

    python benchmarks/finetune_selection/frozen_distill.py tag=kd05_bn bneval=1 kd=0.5 kdT=2 vals=5,3,2,4

Keys (``key=value``) and their defaults are in ``DEFAULTS``.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import common
import numpy as np
import torch
import torch.nn.functional as F
from cached_maps import gain_and_roll, run_prefix

from esclab.train.distill import blend_losses, distillation_loss

DEFAULTS = {
    "start": 13,  # index of the first trainable layer
    "variants": 8,  # augmented copies of every clip's frozen maps
    "epochs": 40,
    "lr": 1e-4,  # Adam learning rate of the trainable layers
    "headlr": 1e-3,  # the head's
    "mixup": 0.3,
    "roll": 1,  # largest time roll of the maps, in time steps
    "bneval": 0,  # 1: BatchNorm running statistics kept
    "kd": 0.0,  # weight of the distillation loss
    "kdT": 1.0,  # its temperature
    "vals": "5",  # validation folds, comma-separated, of 2-5
    "seed": 0,
    "pc": 1.0,  # the probe's C
    "swa": 0,  # also score the mean weights of the last this many epochs (0: not)
    "tag": "",
    **common.PATHS,
}


def frozen_maps(model: torch.nn.Module, specs: torch.Tensor, opts: SimpleNamespace) -> torch.Tensor:
    """``(variants + 1, N, C, H, W)``: the clean maps first, read from the scratch cache when it has them."""
    path = Path(opts.scratch) / f"maps_S{opts.start}_V{opts.variants}.pt"
    if path.exists():
        return torch.load(path)
    started, rng = time.time(), np.random.default_rng(123)
    maps = torch.stack([run_prefix(model, opts.start, specs)] +
                       [run_prefix(model, opts.start, gain_and_roll(specs, rng)) for _ in range(opts.variants)])
    torch.save(maps, path)
    print("maps", tuple(maps.shape), round(time.time() - started), "s", flush=True)
    return maps


class Split:
    """The maps and targets, and the model's embeddings and logits of the clean maps of some clips."""

    def __init__(self, maps: torch.Tensor, targets: np.ndarray):
        self.maps, self.targets = maps, targets

    def embed(self, model: torch.nn.Module, idx: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.inference_mode():
            return torch.cat([model.forward_features_from_frozen(self.maps[0, idx[i:i + 200]])
                              for i in range(0, len(idx), 200)]).numpy()

    def logits(self, model: torch.nn.Module, idx: np.ndarray) -> torch.Tensor:
        model.eval()
        with torch.inference_mode():
            return torch.cat([model.forward_head(model.forward_features_from_frozen(self.maps[0, idx[i:i + 200]]))
                              for i in range(0, len(idx), 200)])

    def accuracy(self, model: torch.nn.Module, idx: np.ndarray) -> float:
        return common.accuracy(self.logits(model, idx), self.targets[idx])


def running_mean(mean: dict | None, state: dict, count: int) -> dict:
    """The running mean of floating-point tensors over ``count + 1`` states (the others: the latest)."""
    state = {k: v.detach().clone().float() if v.is_floating_point() else v.clone() for k, v in state.items()}
    if mean is None:
        return state
    return {k: mean[k] * count / (count + 1) + state[k] / (count + 1) if state[k].is_floating_point() else state[k]
            for k in state}


def train(model: torch.nn.Module, teacher: torch.nn.Module | None, split: Split, train_idx: np.ndarray,
          val_idx: np.ndarray, opts: SimpleNamespace, label: str) -> dict | None:
    """Fit ``model`` on ``train_idx``; returns the mean state of the last ``opts.swa`` epochs (or None)."""
    rng, gen = np.random.default_rng(opts.seed), torch.Generator().manual_seed(opts.seed)
    body = list(model.features[opts.start:].parameters())
    optimizer = torch.optim.Adam([{"params": body, "lr": opts.lr},
                                  {"params": model.classifier.parameters(), "lr": opts.headlr}])
    scheduler = common.warmup_cosine(optimizer, math.ceil(len(train_idx) / common.BATCH), opts.epochs)
    mean_state, averaged, started = None, 0, time.time()
    for epoch in range(opts.epochs):
        common.train_mode(model, opts.bneval)
        order = rng.permutation(train_idx)
        variant = rng.integers(0, len(split.maps), len(order))
        total = 0.0
        for i in range(0, len(order), common.BATCH):
            idx = order[i:i + common.BATCH]
            hidden = split.maps[variant[i:i + common.BATCH], idx].clone()
            if opts.roll:
                hidden = common.roll_each(hidden, rng.integers(-opts.roll, opts.roll + 1, len(idx)))
            target = common.one_hot(split.targets[idx])
            if opts.mixup > 0:
                hidden, target = common.mixup(hidden, target, opts.mixup, gen)
            logits = model.forward_head(model.forward_features_from_frozen(hidden))
            loss = F.cross_entropy(logits, target)
            if opts.kd > 0:
                with torch.no_grad():
                    taught = teacher.forward_head(teacher.forward_features_from_frozen(hidden))
                loss = blend_losses(loss, distillation_loss(logits, taught, opts.kdT), opts.kd)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        if opts.swa and epoch >= opts.epochs - opts.swa:
            mean_state, averaged = running_mean(mean_state, model.state_dict(), averaged), averaged + 1
        if epoch % 10 == 9 or epoch == opts.epochs - 1:
            print(f"{label} ep{epoch + 1} loss {total / len(order):.3f} acc {split.accuracy(model, val_idx):.4f} "
                  f"{time.time() - started:.0f}s", flush=True)
    return mean_state


def swa_accuracy(model: torch.nn.Module, state: dict, split: Split, train_idx: np.ndarray, val_idx: np.ndarray,
                 bneval: int) -> float:
    averaged = copy.deepcopy(model)
    averaged.load_state_dict(state)
    if not bneval:  # statistics of the averaged weights, from the clean training maps
        averaged.train()
        for layer in averaged.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.reset_running_stats()
                layer.momentum = None
        with torch.no_grad():
            for i in range(0, len(train_idx), 64):
                averaged.forward_features_from_frozen(split.maps[0, train_idx[i:i + 64]])
    return split.accuracy(averaged, val_idx)


def main() -> None:
    opts = SimpleNamespace(**common.parse_key_values(sys.argv[1:], DEFAULTS))
    data, targets, folds = common.start_run(opts)
    pretrained = common.create_mn04(opts.weights, head="linear", frozen_blocks=opts.start, taps=[13, 15],
                                    pool="meanmax")
    pretrained.eval()
    split = Split(frozen_maps(pretrained, torch.from_numpy(data.specs), opts), targets)
    rows = []
    for val in (int(v) for v in opts.vals.split(",")):
        train_idx, val_idx = common.inner_split(folds, val)
        probe = common.fit_inner_probe(split.embed(pretrained, train_idx), targets[train_idx], opts.pc)
        probe_acc = float((probe.predict(split.embed(pretrained, val_idx)) == targets[val_idx]).mean())
        torch.manual_seed(opts.seed)
        model = copy.deepcopy(pretrained)
        teacher = copy.deepcopy(pretrained)
        common.set_head_from_probe(teacher, probe)
        teacher.eval()
        started = time.time()
        mean_state = train(model, teacher, split, train_idx, val_idx, opts, f"{opts.tag} val{val}")
        row = {"probe": probe_acc, "ft": split.accuracy(model, val_idx)}
        if mean_state is not None:
            row["swa"] = swa_accuracy(model, mean_state, split, train_idx, val_idx, opts.bneval)
        probe_probs = torch.from_numpy(probe.predict_proba(split.embed(pretrained, val_idx)))
        summed = probe_probs + F.softmax(split.logits(model, val_idx), 1)
        row["ens"] = float((summed.argmax(1).numpy() == targets[val_idx]).mean())
        rows.append(row)
        print(f"RESULT {opts.tag} val{val} " + " ".join(f"{k} {v:.4f}" for k, v in row.items()) +
              f" {time.time() - started:.0f}s", flush=True)
    print(f"SUMMARY {opts.tag} {sys.argv[1:]} " +
          " ".join(f"{k} {np.mean([r[k] for r in rows]):.4f}" for k in rows[0]), flush=True)


if __name__ == "__main__":
    main()
