"""What the fine-tune selection scripts share: paths, ``key=value`` parsing, the data and its inner split,
mn04, the linear probe and the training-loop pieces.

The scripts import it as ``from common import ...``: Python puts a script's own folder on ``sys.path``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.pipeline import Pipeline

from esclab.config import load_config
from esclab.data.prepare import PreparedData, prepare_data
from esclab.models import create_model
from esclab.train.probe import fit_probe, linear_head_of

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CONFIG = REPO / "configs" / "experiment" / "mn04_probe.yaml"
INNER_FOLDS = (2, 3, 4, 5)
NUM_CLASSES = 50
BATCH = 32
PROBE_SEED = 42

# the path keys, with their defaults next to this repository
PATHS = {
    "data": SHARED / "esc50",
    "cache": REPO / "cache" / "features",
    "weights": SHARED / "pretrained" / "mn04_as_mAP_432.pt",
    "scratch": Path("/tmp/esclab_finetune_selection"),
}


def parse_key_values(argv: list[str], defaults: dict[str, Any], tags: list[str] | None = None) -> dict[str, Any]:
    """``key=value`` arguments over ``defaults``, each converted to its default's type (``float`` where
    the default is ``None``).

    Keys that ``defaults`` does not know are ignored, as they always were, with a note on stderr. An
    argument without ``=`` is appended to ``tags`` where it is given, else stops the script.
    """
    options = dict(defaults)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            if tags is None:
                raise SystemExit(f"arguments are key=value, got {arg!r}")
            tags.append(arg)
            continue
        if key not in defaults:
            print(f"ignoring unknown key {key!r}", file=sys.stderr)
            continue
        default = defaults[key]
        options[key] = float(value) if default is None else type(default)(value)
    return options


def parse_training_options(argv: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``parse_key_values`` for a fine-tuning run: ``headlr`` defaults to ``lr`` and ``val`` must be one
    of the inner folds."""
    options = parse_key_values(argv, defaults)
    if options["headlr"] is None:
        options["headlr"] = options["lr"]
    if options["val"] not in INNER_FOLDS:
        raise SystemExit(f"val must be one of the inner folds {INNER_FOLDS}, got {options['val']}")
    return options


def load_data(root: Path, cache_dir: Path) -> PreparedData:
    """ESC-50's clip table and cached log-mels, with mn04_probe's front end."""
    cfg = load_config(CONFIG, [f"data.root={root}", f"features.cache_dir={cache_dir}"])
    return prepare_data(cfg, progress=False)


def load_clips(opts: SimpleNamespace) -> tuple[PreparedData, np.ndarray, np.ndarray]:
    """The data at ``opts.data`` (log-mels cached at ``opts.cache``), its clips' targets and folds."""
    data = load_data(opts.data, opts.cache)
    return data, data.table.clips["target"].to_numpy(), data.table.clips["fold"].to_numpy()


def start_run(opts: SimpleNamespace) -> tuple[PreparedData, np.ndarray, np.ndarray]:
    """Two torch threads, the scratch folder made, then ``load_clips``."""
    torch.set_num_threads(2)
    opts.scratch.mkdir(parents=True, exist_ok=True)
    return load_clips(opts)


def inner_split(folds: np.ndarray, val_fold: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training clips (the inner folds but ``val_fold``) and of the validation clips."""
    train_folds = [fold for fold in INNER_FOLDS if fold != val_fold]
    return np.flatnonzero(np.isin(folds, train_folds)), np.flatnonzero(folds == val_fold)


def start_training(opts: SimpleNamespace) -> tuple[PreparedData, np.ndarray, np.ndarray, np.ndarray]:
    """``start_run`` for a fine-tuning run: the data, its targets and the indices of the training and the
    validation clips of the inner split that validates on ``opts.val``."""
    data, targets, folds = start_run(opts)
    return data, targets, *inner_split(folds, opts.val)


def create_mn04(weights: Path, num_classes: int = NUM_CLASSES, **kwargs: Any) -> torch.nn.Module:
    """EfficientAT's mn04 with the pretrained ``weights``; ``kwargs`` go to ``create_model``."""
    return create_model("mn04", num_classes=num_classes, pretrained=str(weights), **kwargs)


def fit_inner_probe(embeddings: np.ndarray, targets: np.ndarray, c: float = 1.0) -> Pipeline:
    """The standardised logistic-regression probe (inverse L2 strength ``c``) on ``(N, D)`` embeddings."""
    return fit_probe(embeddings, targets, c, PROBE_SEED)


def set_head_from_probe(model: torch.nn.Module, probe: Pipeline) -> None:
    """Set ``model``'s linear head (its last classifier layer) to the probe's linear map."""
    weight, bias = linear_head_of(probe)
    with torch.no_grad():
        model.classifier[-1].weight.copy_(torch.from_numpy(weight))
        model.classifier[-1].bias.copy_(torch.from_numpy(bias))


def warmup_cosine(optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                  epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up over the first epoch, then cosine decay to zero at the end."""
    total = epochs * steps_per_epoch

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adam_with_schedule(body: list[torch.nn.Parameter], model: torch.nn.Module, opts: SimpleNamespace,
                       num_train: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam over the ``body`` parameters (``opts.lr``) and ``model``'s classifier (``opts.headlr``), weight
    decay ``opts.wd``, with ``warmup_cosine`` over ``opts.epochs`` epochs of ``num_train`` clips."""
    optimizer = torch.optim.Adam([{"params": body, "lr": opts.lr},
                                  {"params": model.classifier.parameters(), "lr": opts.headlr}],
                                 weight_decay=opts.wd)
    return optimizer, warmup_cosine(optimizer, math.ceil(num_train / BATCH), opts.epochs)


def one_hot(labels: np.ndarray) -> torch.Tensor:
    """``(B,)`` class indices -> ``(B, NUM_CLASSES)`` float one-hot targets."""
    return F.one_hot(torch.from_numpy(labels), NUM_CLASSES).float()


def roll_each(x: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    """Roll every item of the batch ``x`` along its last (time) axis by its own shift."""
    return torch.stack([torch.roll(x[j], int(shifts[j]), dims=-1) for j in range(len(x))])


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each item with a random partner of the batch, weight ~ Beta(alpha, alpha) per item."""
    lam = torch.distributions.Beta(alpha, alpha).sample((len(x),))
    perm = torch.randperm(len(x), generator=gen)
    lam_x = lam.view(-1, *[1] * (x.dim() - 1))
    return lam_x * x + (1 - lam_x) * x[perm], lam[:, None] * target + (1 - lam[:, None]) * target[perm]


def set_batchnorm_eval(model: torch.nn.Module) -> None:
    """Put every BatchNorm of ``model`` in eval mode (running statistics used, not updated)."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def train_mode(model: torch.nn.Module, bneval: int) -> None:
    """``model`` in training mode, but for every BatchNorm where ``bneval`` is set."""
    model.train()
    if bneval:
        set_batchnorm_eval(model)


def train_step(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float,
               optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler) -> float:
    """One step of ``optimizer`` on the cross-entropy of ``logits`` against the (soft) ``target``, then
    one of ``scheduler``; returns the batch's mean loss."""
    loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def accuracy(logits: torch.Tensor, targets: np.ndarray) -> float:
    """Share of the rows of ``logits`` whose largest entry is at the target class."""
    return float((logits.argmax(1).numpy() == targets).mean())
