"""Seconds per online training step of mn04_finetune_ls10's network, frozen layers run at every step.

One step of ``ClassifierModule.training_step`` as ``train.cache_frozen: false`` runs it: batch 32 of 128 x 500
log-mels (random), the first eleven layers frozen, layers 11-16 and a head on the mean and max of layers 11, 13,
15 and the last, EfficientAT's online augmentation (``configs/augment/mn_online.yaml``: gain, roll, two-clip
level mixing, mixup), distillation from a copy of the network (the probe's place), label smoothing 0.1, then
backward and an Adam step. Prints the median of 8 steps. No pretrained weights are needed: the cost does not
depend on them.

    python benchmarks/finetune_selection/online_step_cost.py [--threads 2] [--batch 32]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch

from esclab.config import load_config
from esclab.train.module import ClassifierModule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("configs/experiment/mn04_finetune_ls10.yaml", ["augment=mn_online", "train.cache_frozen=false"])
    augment = dataclasses.asdict(cfg.augment)
    train = {"channels_last": False, "distill_weight": cfg.train.distill_weight,
             "distill_temperature": cfg.train.distill_temperature, "freeze_bn_stats": True,
             "label_smoothing": cfg.train.label_smoothing}
    module = ClassifierModule("mn04", 50, dict(cfg.model.kwargs), None, train=train, augment=augment)
    module.set_teacher(copy.deepcopy(module.model))
    module.train()
    module.log = lambda *a, **k: None  # no Trainer to log to
    optimizer = torch.optim.Adam([p for p in module.model.parameters() if p.requires_grad], 1e-4)
    spec = torch.randn(args.batch, 1, 128, 500) - 1.0  # about the scale of the Kaldi log-mels
    target = torch.randint(0, 50, (args.batch,))
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        module.training_step((spec, target), step).backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    print(f"online training step, batch {args.batch}, {args.threads} threads: median "
          f"{sorted(times)[len(times) // 2]:.3f} s over {args.steps} steps")


if __name__ == "__main__":
    main()
