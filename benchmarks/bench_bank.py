"""What the augmentation bank saves: data-side cost per training epoch, online vs bank.

Online, every training example would go through the waveform transforms and the log-mel
each epoch (decoded waveforms held in memory, the best case for online). With the bank,
those run ``bank_size`` times per clip once, and an epoch only picks a stored variant.

    python benchmarks/bench_bank.py --data ../shared/esc50 --augment strong --clips 100 --train-clips 1440

Prints per-clip costs, the bank's one-off build time for the whole dataset and the data-side
seconds per epoch of each scheme (add them to a measured model epoch for the epoch time).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from esclab.audio import load_audio
from esclab.augment import build_waveform_augment
from esclab.config import load_config
from esclab.data.esc50 import load_esc50
from esclab.features.frontend import LogMel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--augment", default="strong", help="preset in configs/augment")
    parser.add_argument("--clips", type=int, default=100, help="clips timed")
    parser.add_argument("--train-clips", type=int, default=1440, help="training examples per epoch (fold 1: 1440)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("configs/experiment/paper_cnn.yaml", [f"augment={args.augment}", f"data.root={args.data}"])
    augment = build_waveform_augment(cfg.augment, cfg.audio.sample_rate)
    frontend = LogMel.from_config(cfg.audio, cfg.features)
    table = load_esc50(cfg.data.root)
    paths = table.clips["path"].tolist()[: args.clips]
    waves = [load_audio(p, cfg.audio.sample_rate, cfg.audio.duration) for p in paths]
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    for wave in waves:
        augmented = augment(wave, rng).astype(np.float32)
        with torch.no_grad():
            frontend(torch.from_numpy(augmented))
    online_per_clip = (time.perf_counter() - start) / len(waves)

    bank = np.zeros((cfg.augment.bank_size + 1, len(waves), cfg.features.n_mels, cfg.features.frames), np.float32)
    start = time.perf_counter()
    for _ in range(10):
        for i in range(len(waves)):
            bank[rng.integers(0, bank.shape[0]), i].copy()
    bank_per_clip = (time.perf_counter() - start) / (10 * len(waves))

    n_clips = len(table.clips)
    result = {
        "augment": args.augment, "bank_size": cfg.augment.bank_size, "threads": args.threads,
        "online_ms_per_clip": round(1000 * online_per_clip, 2),
        "bank_ms_per_clip": round(1000 * bank_per_clip, 4),
        "online_data_s_per_epoch": round(online_per_clip * args.train_clips, 1),
        "bank_data_s_per_epoch": round(bank_per_clip * args.train_clips, 3),
        "bank_build_s_all_clips_estimate": round(online_per_clip * cfg.augment.bank_size * n_clips, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
