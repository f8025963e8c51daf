"""Fine-tune mn04 on cached maps of its frozen first layers (LP-FT) and print validation accuracy per epoch.

EfficientAT's mn04 (AudioSet weights, linear 50-class head) keeps its first ``start`` layers frozen in eval
mode, so their output maps are computed once per clip: for the clean log-mels and for ``variants``
augmented copies (gain drawn in +-6 dB, applied to mel power, and a time roll of up to +-12 frames).
The layers from ``start`` on and the head then train on these maps with Adam (``lr`` for the layers,
``headlr`` for the head, one epoch of linear warm-up then cosine decay), in batches of 32 that take a
random variant of each clip, roll the maps by up to +-``roll`` time steps and mix them (mixup with
Beta(``mixup``, ``mixup``)). ``head=probe`` starts the head from a logistic-regression probe fitted on the
clean embeddings of the training folds (LP-FT); any other value keeps its random initialisation.
``bneval=1`` keeps every BatchNorm in eval mode while training.

Split: the inner split of outer fold 1's training folds, train on folds 2-4 and validate on fold 5
(``val=`` makes another of folds 2-5 the validation fold). Fold 1, the outer test fold, is never trained
on or scored; it is only carried through the frozen layers with every other clip.

The cached maps go to ``<scratch>/acts_S<start>_V<variants>.pt`` and a later run with the same ``start``
and ``variants`` loads them. Such a run draws no augmentations for the variants, so its training draws,
and its numbers, differ from those of the run that wrote the cache.

Usage::

    python benchmarks/finetune_selection/cached_maps.py tag=C1 start=5 head=probe lr=1e-4 epochs=20

Keys (``key=value``) and their defaults are in ``DEFAULTS``; ``data``, ``cache``, ``weights`` and ``scratch``
default to paths next to this repository.
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import common
import numpy as np
import torch

DEFAULTS = {
    "start": 5,  # index of the first trainable layer; the layers before it are frozen and cached
    "lr": 1e-4,  # Adam learning rate of the trainable layers
    "headlr": None,  # the head's learning rate (None: lr)
    "epochs": 20,
    "variants": 4,  # augmented copies of every clip's frozen maps
    "mixup": 0.3,  # Beta parameter of mixup on the maps (0: none)
    "roll": 8,  # largest time roll of the maps, in time steps (0: none)
    "wd": 0.0,  # Adam weight decay
    "ls": 0.0,  # label smoothing
    "bneval": 0,  # 1: every BatchNorm stays in eval mode while training
    "head": "probe",  # probe: start from a logistic-regression probe (LP-FT); anything else: random
    "val": 5,  # validation fold; the other folds of 2-5 train
    "tag": "",  # label printed in front of every epoch line
    "pc": 1.0,  # the probe's C (inverse L2 strength)
    **common.PATHS,
}


def parse_options(argv: list[str]) -> SimpleNamespace:
    """``key=value`` arguments over ``DEFAULTS``, each converted to its default's type.

    Keys that ``DEFAULTS`` does not know are ignored, as they always were, with a note on stderr.
    """
    return SimpleNamespace(**common.parse_training_options(argv, DEFAULTS))


def run_prefix(model: torch.nn.Module, start: int, specs: torch.Tensor) -> torch.Tensor:
    """``(N, 128, T)`` log-mels -> ``(N, C, H, W)`` output maps of the first ``start`` layers."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(specs), 64):
            out.append(model.features[:start](specs[i:i + 64].unsqueeze(1)))
    return torch.cat(out)


def gain_and_roll(specs: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """One augmented copy of ``(N, 128, T)`` log-mels: a gain in +-6 dB applied exactly to the mel power
    under the log, then a time roll of up to +-12 frames, each drawn per clip."""
    gain_db = torch.from_numpy(rng.uniform(-6, 6, len(specs))).float()[:, None, None]
    power = torch.exp(5 * specs - 4.5) - 1e-5
    x = (torch.log((power.clamp_min(0) * 10 ** (gain_db / 10)) + 1e-5) + 4.5) / 5
    shifts = rng.integers(-12, 13, len(specs))
    return torch.stack([torch.roll(x[i], int(shifts[i]), dims=-1) for i in range(len(x))])


def frozen_maps(model: torch.nn.Module, specs: torch.Tensor, opts: SimpleNamespace,
                rng: np.random.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The clean maps and ``opts.variants`` augmented ones, read from the scratch cache when it has them."""
    path = opts.scratch / f"acts_S{opts.start}_V{opts.variants}.pt"
    if path.exists():
        clean, variants = torch.load(path)
        return clean, variants
    clean = run_prefix(model, opts.start, specs)
    variants = [run_prefix(model, opts.start, gain_and_roll(specs, rng)) for _ in range(opts.variants)]
    torch.save((clean, variants), path)
    return clean, variants


def embed(model: torch.nn.Module, start: int, maps: torch.Tensor, idx: np.ndarray) -> np.ndarray:
    """``(len(idx), D)`` mean-pooled embeddings of the clips ``idx`` from their frozen maps."""
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(idx), 128):
            out.append(model.classifier[:2](model.features[start:](maps[idx[i:i + 128]])))
    return torch.cat(out).numpy()


def evaluate(model: torch.nn.Module, start: int, maps: torch.Tensor, val_idx: np.ndarray,
             targets: np.ndarray) -> float:
    """Accuracy on the validation clips from their clean frozen maps."""
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model.classifier(model.features[start:](maps[val_idx[i:i + 128]]))
                            for i in range(0, len(val_idx), 128)])
    return common.accuracy(logits, targets[val_idx])


def train_epoch(model: torch.nn.Module, maps: torch.Tensor, train_idx: np.ndarray, targets: np.ndarray,
                opts: SimpleNamespace, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, rng: np.random.Generator,
                gen: torch.Generator) -> float:
    """One pass over the training clips, each as a random one of its ``(V + 1)`` cached maps in ``maps``;
    returns the mean training loss."""
    common.train_mode(model, opts.bneval)
    model.features[:opts.start].eval()
    order = rng.permutation(train_idx)
    variant = rng.integers(0, len(maps), len(order))
    total_loss = 0
    for i in range(0, len(order), common.BATCH):
        idx = order[i:i + common.BATCH]
        hidden = maps[variant[i:i + common.BATCH], idx].clone()
        if opts.roll:
            hidden = common.roll_each(hidden, rng.integers(-opts.roll, opts.roll + 1, len(idx)))
        target = common.one_hot(targets[idx])
        if opts.mixup > 0:
            hidden, target = common.mixup(hidden, target, opts.mixup, gen)
        logits = model.classifier(model.features[opts.start:](hidden))
        total_loss += common.train_step(logits, target, opts.ls, optimizer, scheduler) * len(idx)
    return total_loss / len(order)


def main() -> None:
    opts = parse_options(sys.argv[1:])
    data, targets, train_idx, val_idx = common.start_training(opts)
    model = common.create_mn04(opts.weights, head="linear")
    model.eval()
    specs = torch.from_numpy(data.specs)
    rng = np.random.default_rng(0)

    started = time.time()
    clean, variants = frozen_maps(model, specs, opts, rng)
    print("prefix cache", time.time() - started, "s", tuple(clean.shape), flush=True)

    started = time.time()
    probe = common.fit_inner_probe(embed(model, opts.start, clean, train_idx), targets[train_idx], opts.pc)
    probe_acc = float((probe.predict(embed(model, opts.start, clean, val_idx)) == targets[val_idx]).mean())
    print("probe val acc", probe_acc, round(time.time() - started, 1), "s", flush=True)
    if opts.head == "probe":
        common.set_head_from_probe(model, probe)
    print("start val acc", evaluate(model, opts.start, clean, val_idx, targets), flush=True)

    optimizer, scheduler = common.adam_with_schedule(list(model.features[opts.start:].parameters()), model, opts,
                                              len(train_idx))
    maps = torch.stack([clean, *variants])  # (V + 1, N, C, H, W)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(opts.epochs):
        started = time.time()
        loss = train_epoch(model, maps, train_idx, targets, opts, optimizer, scheduler, rng, gen)
        print(f"{opts.tag} epoch {epoch + 1} loss {loss:.3f} "
              f"val {evaluate(model, opts.start, clean, val_idx, targets):.4f} {time.time() - started:.1f}s",
              flush=True)


if __name__ == "__main__":
    main()
