"""The plain pipeline a notebook would write, as the yardstick for esclab's speed (issue 18).

Nothing of esclab's own data, feature, training or prediction code is used (a served model's
weights and settings come from its bundle).

``features``: librosa.load at 22,050 Hz mono, melspectrogram (n_fft 2048, hop 512, 128 mels),
power_to_db(ref=max, top_db=80), one ``.npy`` per clip, in one process.
``train``: the paper CNN (conv 32/64/128 3x3 + BN + ReLU + max-pool, flatten, dense 256/128,
dropout 0.2), Adam 1e-4, batch 32, fp32, one epoch over fold 1's 1600 training clips from those files.
``serve``: a trained bundle behind the plainest FastAPI app: soundfile decodes each upload, librosa
resamples and computes the log-mel, one forward pass per request, no pictures
(:class:`PlainPipeline`, also used one file at a time by ``bench_predict_folder.py``).

Libraries are imported where used, so each subcommand's process pays only for its own.

Usage:
    python benchmarks/plain_pipeline.py features --data ../shared/esc50 --out /tmp/plain
    python benchmarks/plain_pipeline.py train --data ../shared/esc50 --features /tmp/plain
    python benchmarks/plain_pipeline.py serve --checkpoint runs/RUN --port 8001
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import numpy as np


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


class PlainPipeline:
    """Decode, log-mel and forward pass for one file at a time.

    Args:
        checkpoint: a bundle ``.ckpt`` or a run folder (best fold).

    Raises:
        ValueError: a bundle whose front end is not the librosa-style log-mel.
    """

    def __init__(self, checkpoint: str | Path):
        from esclab.bundle import load_bundle
        from esclab.runs import resolve_checkpoint

        bundle = load_bundle(resolve_checkpoint(checkpoint))
        if bundle.features.kind != "logmel":
            raise ValueError(f"the plain pipeline computes librosa log-mels, not {bundle.features.kind!r}")
        self.model, self.standardize = bundle.model.eval(), bundle.frontend[1]
        self.audio, self.features, self.class_names = bundle.audio, bundle.features, bundle.class_names

    def logmel(self, source: str | Path | BinaryIO) -> np.ndarray:
        """A file (path or file object) -> ``(n_mels, frames)`` log-mel in dB."""
        import librosa
        import numpy as np
        import soundfile as sf

        y, sr = sf.read(source, dtype="float32", always_2d=True)
        y = y.mean(axis=1)
        if sr != self.audio.sample_rate:
            y = librosa.resample(y, orig_sr=sr, target_sr=self.audio.sample_rate)
        y = librosa.util.fix_length(y, size=self.audio.num_samples)
        f = self.features
        mel = librosa.feature.melspectrogram(y=y, sr=self.audio.sample_rate, n_fft=f.n_fft, hop_length=f.hop_length,
                                             win_length=f.win_length, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax,
                                             pad_mode="constant")
        db = librosa.power_to_db(mel, ref=np.max, top_db=f.top_db)
        if f.frames is not None:  # cut, or pad with the clip's floor
            db = db[:, :f.frames] if db.shape[1] >= f.frames else np.pad(
                db, ((0, 0), (0, f.frames - db.shape[1])), constant_values=db.min())
        return db.astype(np.float32)

    def probabilities(self, source: str | Path | BinaryIO) -> np.ndarray:
        """A file -> ``(num_classes,)`` softmax probabilities."""
        import torch

        x = torch.from_numpy(self.logmel(source))[None, None]
        with torch.no_grad():
            return torch.softmax(self.model(self.standardize(x)), dim=-1)[0].numpy()


def create_plain_app(pipeline: PlainPipeline) -> Any:
    """``POST /api/predict`` (multipart ``file``) -> the top-5 classes; ``GET /api/health`` (a FastAPI app)."""
    import numpy as np
    from fastapi import FastAPI, File, UploadFile

    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    def predict(file: UploadFile = File(...)) -> dict[str, Any]:
        probs = pipeline.probabilities(io.BytesIO(file.file.read()))
        top = np.argsort(-probs)[:5]
        return {"file": file.filename, "top_k": [{"label": pipeline.class_names[i], "probability": float(probs[i])}
                                                 for i in top]}

    # This module's annotations are strings (``from __future__``) and UploadFile is a local import that
    # FastAPI cannot resolve by name: give it the class itself.
    predict.__annotations__["file"] = UploadFile
    app.post("/api/predict")(predict)
    return app


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(create_plain_app(PlainPipeline(args.checkpoint)), host="127.0.0.1", port=args.port,
                log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("features")
    f.add_argument("--data", required=True)
    f.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--features", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    {"features": features, "train": train, "serve": serve}[args.command](args)


if __name__ == "__main__":
    main()
