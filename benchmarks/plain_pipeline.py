"""The plain pipeline the speed benchmarks compare against: a trained model used "the notebook way".

One file at a time: soundfile decodes it, librosa resamples it, pads or cuts it
(``librosa.util.fix_length``) and computes the log-mel (``feature.melspectrogram`` +
``power_to_db(ref=np.max)``), then the model runs on a batch of one. Only the weights and the
settings come from the bundle (``esclab.bundle.load_bundle``); none of esclab's prediction code
is used. It computes what :class:`esclab.inference.Predictor` computes (log-mel ``kind:
logmel`` bundles only), so the benchmarks also report how often the two agree on the top class.

``python benchmarks/plain_pipeline.py serve --checkpoint CKPT --port P`` serves it as the
plainest web API (FastAPI, one forward pass per request, no pictures), for bench_serve.py.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any, BinaryIO

import librosa
import numpy as np
import soundfile as sf
import torch
import uvicorn
from fastapi import FastAPI, File, UploadFile

from esclab.bundle import load_bundle
from esclab.runs import resolve_checkpoint


class PlainPipeline:
    """Decode, log-mel and forward pass for one file at a time.

    Args:
        checkpoint: a bundle ``.ckpt`` or a run folder (best fold).

    Raises:
        ValueError: a bundle whose front end is not the librosa-style log-mel.
    """

    def __init__(self, checkpoint: str | Path):
        bundle = load_bundle(resolve_checkpoint(checkpoint))
        if bundle.features.kind != "logmel":
            raise ValueError(f"the plain pipeline computes librosa log-mels, not {bundle.features.kind!r}")
        self.model, self.standardize = bundle.model.eval(), bundle.frontend[1]
        self.audio, self.features, self.class_names = bundle.audio, bundle.features, bundle.class_names

    def logmel(self, source: str | Path | BinaryIO) -> np.ndarray:
        """A file (path or file object) -> ``(n_mels, frames)`` log-mel in dB."""
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
        x = torch.from_numpy(self.logmel(source))[None, None]
        with torch.no_grad():
            return torch.softmax(self.model(self.standardize(x)), dim=-1)[0].numpy()


def create_plain_app(pipeline: PlainPipeline) -> FastAPI:
    """``POST /api/predict`` (multipart ``file``) -> the top-5 classes; ``GET /api/health``."""
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/api/predict")
    def predict(file: UploadFile = File(...)) -> dict[str, Any]:
        probs = pipeline.probabilities(io.BytesIO(file.file.read()))
        top = np.argsort(-probs)[:5]
        return {"file": file.filename, "top_k": [{"label": pipeline.class_names[i], "probability": float(probs[i])}
                                                 for i in top]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_plain_app(PlainPipeline(args.checkpoint)), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
