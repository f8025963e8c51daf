"""Fine-tune mn04 with online input augmentation and print validation accuracy every few epochs.

EfficientAT's mn04 (AudioSet weights) keeps its first ``start`` layers frozen; a BatchNorm-folded copy of
them runs in inference mode on every batch, and the layers from ``start`` on and the head train on its
output with Adam (``lr`` for the layers, ``headlr`` for the head, one epoch of linear warm-up then cosine
decay), in batches of 32. Each batch is augmented afresh on the log-mels, in this order: in the mel power
domain a gain in +-``gain`` dB, a time roll of up to +-``roll`` frames and, on a share ``mixp`` of the clips,
a two-clip mix (power ``lam**2 * a + (1 - lam)**2 * b``, as for a waveform sum, lam ~ Beta(2, 2), targets
mixed by lam); then, back on the log-mels, mixup with Beta(``mixup``, ``mixup``). ``head=probe`` starts a
linear head from a logistic-regression probe fitted on the frozen embeddings of the training folds (LP-FT),
``head=mlp`` trains EfficientAT's MLP head, any other value a randomly initialised linear head; ``taps``
(layer indices, comma-separated) and ``pool`` widen the linear head's embedding. ``bneval=1`` keeps every
BatchNorm in eval mode while training.

Split: the inner split of outer fold 1's training folds, train on folds 2-4 and validate on fold 5
(``val=`` makes another of folds 2-5 the validation fold). Fold 1, the outer test fold, is loaded with the
rest of the data but never trained on, embedded or scored.

Every evaluation also writes the validation class probabilities to ``<scratch>/valprobs_<tag>.npy``
(overwritten each time, so it holds the last one), which ``ensemble_val.py`` reads.

Usage::

    python benchmarks/finetune_selection/online.py tag=I1 start=13 head=random bneval=0 lr=1e-4 headlr=1e-3 \\
        epochs=40 every=5

Keys (``key=value``) and their defaults are in ``DEFAULTS``; ``data``, ``cache``, ``weights`` and ``scratch``
default to paths next to this repository.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from common import (
    BATCH,
    PATHS,
    accuracy,
    adam_with_schedule,
    create_mn04,
    fit_inner_probe,
    mixup,
    one_hot,
    parse_training_options,
    roll_each,
    set_head_from_probe,
    start_training,
    train_mode,
    train_step,
)

from esclab.models import prepare_for_inference

DEFAULTS = {
    "start": 5,  # index of the first trainable layer; the layers before it are frozen
    "lr": 3e-5,  # Adam learning rate of the trainable layers
    "headlr": None,  # the head's learning rate (None: lr)
    "epochs": 15,
    "bneval": 1,  # 1: every BatchNorm stays in eval mode while training
    "head": "probe",  # probe: linear, from a probe (LP-FT); mlp: EfficientAT's MLP head; else: random linear
    "mixp": 0.5,  # share of each batch given a two-clip power mix (0: none)
    "mixup": 0.3,  # Beta parameter of mixup on the log-mels (0: none)
    "gain": 6.0,  # largest gain, in dB (0: none)
    "roll": 12,  # largest time roll, in frames (0: none)
    "tag": "",  # label printed on every line and naming the saved validation probabilities
    "val": 5,  # validation fold; the other folds of 2-5 train
    "wd": 0.0,  # Adam weight decay
    "ls": 0.0,  # label smoothing
    "every": 1,  # evaluate every this many epochs (and after the last)
    "taps": "",  # comma-separated layers whose pooled maps join the embedding (linear head only)
    "pool": "mean",  # pooling of the maps into the embedding (mean or meanmax)
    "pc": 1.0,  # the probe's C (inverse L2 strength)
    **PATHS,
}


def parse_options(argv: list[str]) -> SimpleNamespace:
    """``key=value`` arguments over ``DEFAULTS``, each converted to its default's type.

    Keys that ``DEFAULTS`` does not know are ignored, as they always were, with a note on stderr.
    """
    options = parse_training_options(argv, DEFAULTS)
    options["taps"] = [int(tap) for tap in options["taps"].split(",") if tap]
    return SimpleNamespace(**options)


def run_frozen(frozen: torch.nn.Module, specs: torch.Tensor) -> torch.Tensor:
    """``(N, 128, T)`` log-mels -> the frozen layers' ``(N, C, H, W)`` output maps."""
    with torch.inference_mode():
        return torch.cat([frozen.forward_frozen(specs[i:i + 128].unsqueeze(1))
                          for i in range(0, len(specs), 128)]).clone()


def init_head_from_probe(model: torch.nn.Module, frozen: torch.nn.Module, specs: torch.Tensor,
                         targets: np.ndarray, c: float) -> None:
    """Set ``model``'s linear head to a logistic-regression probe fitted on the frozen embeddings of
    ``specs``."""
    maps = run_frozen(frozen, specs)
    with torch.inference_mode():
        embeddings = torch.cat([frozen.forward_features_from_frozen(maps[i:i + 128])
                                for i in range(0, len(maps), 128)]).numpy()
    set_head_from_probe(model, fit_inner_probe(embeddings, targets, c))


def evaluate(model: torch.nn.Module, val_maps: torch.Tensor, val_targets: np.ndarray,
             probs_path: Path) -> float:
    """Validation accuracy from the clips' frozen maps; their class probabilities are saved to
    ``probs_path``."""
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model.forward_from_frozen(val_maps[i:i + 128])
                            for i in range(0, len(val_maps), 128)])
    np.save(probs_path, torch.softmax(logits, 1).numpy())
    return accuracy(logits, val_targets)


def to_power(logmel: torch.Tensor) -> torch.Tensor:
    """EfficientAT's normalised log-mel ``(log(p + 1e-5) + 4.5) / 5`` back to mel power ``p``."""
    return (torch.exp(5 * logmel - 4.5) - 1e-5).clamp_min(0)


def to_logmel(power: torch.Tensor) -> torch.Tensor:
    """Mel power to EfficientAT's normalised log-mel."""
    return (torch.log(power + 1e-5) + 4.5) / 5


def mix_power(power: torch.Tensor, target: torch.Tensor, share: float, rng: np.random.Generator,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """On a random ``share`` of the batch, sum each clip's mel power with a random partner's as their
    waveforms would sum (amplitudes lam and 1 - lam, lam ~ Beta(2, 2)); targets mix by lam."""
    chosen = torch.from_numpy(rng.random(len(power)) < share)
    lam = torch.distributions.Beta(2.0, 2.0).sample((len(power),))
    perm = torch.randperm(len(power), generator=gen)
    mixed = (lam ** 2)[:, None, None] * power + ((1 - lam) ** 2)[:, None, None] * power[perm]
    mixed_target = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
    power = torch.where(chosen[:, None, None], mixed, power)
    return power, torch.where(chosen[:, None], mixed_target, target)


def augment(specs: torch.Tensor, target: torch.Tensor, opts: SimpleNamespace, rng: np.random.Generator,
            gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of ``(B, 128, T)`` log-mels and one-hot targets after gain, roll, power mix and mixup."""
    power = to_power(specs)
    if opts.gain:
        gain_db = torch.from_numpy(rng.uniform(-opts.gain, opts.gain, len(power))).float()
        power = power * (10 ** (gain_db / 10))[:, None, None]
    if opts.roll:
        power = roll_each(power, rng.integers(-opts.roll, opts.roll + 1, len(power)))
    if opts.mixp > 0:
        power, target = mix_power(power, target, opts.mixp, rng, gen)
    x = to_logmel(power)
    if opts.mixup > 0:
        x, target = mixup(x, target, opts.mixup, gen)
    return x, target


def train_epoch(model: torch.nn.Module, frozen: torch.nn.Module, specs: torch.Tensor, train_idx: np.ndarray,
                targets: np.ndarray, opts: SimpleNamespace, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler, rng: np.random.Generator,
                gen: torch.Generator) -> float:
    """One pass over the training clips, augmented afresh; returns the mean training loss."""
    train_mode(model, opts.bneval)
    order = rng.permutation(train_idx)
    total_loss = 0
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        target = one_hot(targets[idx])
        x, target = augment(specs[idx], target, opts, rng, gen)
        with torch.inference_mode():
            hidden = frozen.forward_frozen(x.unsqueeze(1))
        logits = model.forward_from_frozen(hidden.clone())
        total_loss += train_step(logits, target, opts.ls, optimizer, scheduler) * len(idx)
    return total_loss / len(order)


def main() -> None:
    opts = parse_options(sys.argv[1:])
    data, targets, train_idx, val_idx = start_training(opts)
    model = create_mn04(opts.weights, head="mlp" if opts.head == "mlp" else "linear", frozen_blocks=opts.start,
                        taps=opts.taps, pool=opts.pool)
    specs = torch.from_numpy(data.specs)
    # a BatchNorm-folded copy of the pretrained network: its frozen layers run on every batch, and its whole
    # body embeds the training clips for the probe
    frozen = prepare_for_inference(copy.deepcopy(model))
    val_maps = run_frozen(frozen, specs[val_idx])
    probs_path = opts.scratch / f"valprobs_{opts.tag}.npy"

    if opts.head == "probe":
        init_head_from_probe(model, frozen, specs[train_idx], targets[train_idx], opts.pc)
    print(opts.tag, "start val", evaluate(model, val_maps, targets[val_idx], probs_path), flush=True)

    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    body = [p for p in model.features.parameters() if p.requires_grad]
    optimizer, scheduler = adam_with_schedule(body, model, opts, len(train_idx))
    for epoch in range(opts.epochs):
        started = time.time()
        loss = train_epoch(model, frozen, specs, train_idx, targets, opts, optimizer, scheduler, rng, gen)
        message = f"{opts.tag} epoch {epoch + 1} loss {loss:.3f}"
        if (epoch + 1) % opts.every == 0 or epoch + 1 == opts.epochs:
            message += f" val {evaluate(model, val_maps, targets[val_idx], probs_path):.4f}"
        print(message, f"{time.time() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
