"""The plain pipeline a notebook would write, as the yardstick for esclab's speed (issue 18).

``features``: librosa.load at 22,050 Hz mono, melspectrogram (n_fft 2048, hop 512, 128 mels),
power_to_db(ref=max, top_db=80), one ``.npy`` per clip, in one process.
``train``: the paper CNN (conv 32/64/128 3x3 + BN + ReLU + max-pool, flatten, dense 256/128,
dropout 0.2), Adam 1e-4, batch 32, fp32, one epoch over fold 1's 1600 training clips from those files.

Usage:
    python benchmarks/plain_pipeline.py features --data ../shared/esc50 --out /tmp/plain
    python benchmarks/plain_pipeline.py train --data ../shared/esc50 --features /tmp/plain
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path


def rows(data: Path) -> list[dict[str, str]]:
    with open(data / "meta" / "esc50.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def audio_path(data: Path, filename: str) -> Path:
    """The clip the CSV names, or its Ogg copy (this ESC-50 copy is stored as .ogg)."""
    path = data / "audio" / filename
    return path if path.exists() else path.with_suffix(".ogg")


def features(args: argparse.Namespace) -> None:
    import librosa
    import numpy as np

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for row in rows(Path(args.data)):
        y, sr = librosa.load(audio_path(Path(args.data), row["filename"]), sr=22050, mono=True)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
        np.save(out / (row["filename"][:-4] + ".npy"), librosa.power_to_db(mel, ref=np.max, top_db=80))
    print(f"features: {time.perf_counter() - start:.2f} s in the loop")


def paper_cnn(n_mels: int, frames: int, classes: int = 50):
    from torch import nn

    layers, channels = [], 1
    for width in (32, 64, 128):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    flat = channels * (n_mels // 8) * (frames // 8)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, classes))


def train(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    train_rows = [r for r in rows(Path(args.data)) if r["fold"] != "1"]
    x = torch.from_numpy(np.stack([np.load(Path(args.features) / (r["filename"][:-4] + ".npy"))
                                   for r in train_rows]).astype(np.float32)).unsqueeze(1)
    y = torch.tensor([int(r["target"]) for r in train_rows])
    model = paper_cnn(x.shape[2], x.shape[3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for batch in torch.randperm(len(x)).split(32):
        opt.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    print(f"train: {seconds:.2f} s/epoch for {len(x)} clips, {seconds / len(x) * 1000:.2f} ms per clip, "
          f"last loss {loss.item():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("features")
    f.add_argument("--data", required=True)
    f.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--features", required=True)
    args = parser.parse_args()
    {"features": features, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
