"""Latency of one clip on one CPU thread: PyTorch and onnxruntime, with and without the log-mel.

Usage: python benchmarks/bench_latency.py --checkpoint RUN_DIR_OR_CKPT [--seconds 5] [--runs 200]

The clip is ``--seconds`` of noise at the bundle's rate, padded or cut to the bundle's clip
length as :class:`esclab.inference.Predictor` does, batch 1. Reported, as JSON, in milliseconds
(median and 90th percentile over ``--runs`` after ``--warmup`` runs):

* ``features``: the log-mel front end alone (PyTorch);
* ``torch``: ``model`` (standardised log-mel -> logits) and ``end_to_end`` (waveform -> logits);
* ``onnxruntime``: ``model`` (the exported log-mel graph) and ``end_to_end`` (PyTorch log-mel
  + that graph), and ``waveform_graph`` (the exported waveform -> logits graph, STFT included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from esclab.audio import pad_or_trim
from esclab.export import export_bundle
from esclab.inference import Predictor
from esclab.provenance import cpu_model


def timed(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    """Median and 90th percentile wall time of ``fn()`` in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_ms": 1e3 * float(np.median(times)), "p90_ms": 1e3 * float(np.percentile(times, 90))}


def single_thread_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bench(checkpoint: str, seconds: float, runs: int, warmup: int) -> dict:
    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(checkpoint)
    bundle = predictor.bundle
    logmel, standardize = bundle.frontend
    rng = np.random.default_rng(0)
    clip = pad_or_trim((0.1 * rng.standard_normal(int(seconds * predictor.sample_rate))).astype(np.float32),
                       predictor.clip_samples)
    wave = torch.from_numpy(clip)[None]
    with torch.no_grad():
        spec = logmel(wave)
        model_input = standardize(spec)
    with tempfile.TemporaryDirectory() as tmp:
        spec_graph = export_bundle(bundle, Path(tmp) / "logmel.onnx")
        wave_graph = export_bundle(bundle, Path(tmp) / "waveform.onnx", waveform=True)
        spec_session, wave_session = single_thread_session(spec_graph.path), single_thread_session(wave_graph.path)

    def torch_model() -> None:
        with torch.no_grad():
            bundle.model(model_input)

    def torch_features() -> None:
        with torch.no_grad():
            logmel(wave)

    def ort_end_to_end() -> None:
        with torch.no_grad():
            features = logmel(wave).numpy()
        spec_session.run(["logits"], {"logmel": features})

    return {
        "checkpoint": str(predictor.checkpoint),
        "model": bundle.model_name,
        "parameters": sum(p.numel() for p in bundle.model.parameters()),
        "clip_seconds": predictor.clip_seconds,
        "input_seconds": seconds,
        "sample_rate": predictor.sample_rate,
        "logmel_shape": list(spec.shape[1:]),
        "threads": {"torch": torch.get_num_threads(), "onnxruntime_intra_op": 1},
        "runs": runs,
        "warmup": warmup,
        "features": timed(torch_features, runs, warmup),
        "torch": {"model": timed(torch_model, runs, warmup),
                  "end_to_end": timed(lambda: bundle.logits(wave), runs, warmup)},
        "onnxruntime": {
            "model": timed(lambda: spec_session.run(["logits"], {"logmel": spec.numpy()}), runs, warmup),
            "end_to_end": timed(ort_end_to_end, runs, warmup),
            "waveform_graph": timed(lambda: wave_session.run(["logits"], {"waveform": wave.numpy()}), runs, warmup),
        },
        "parity_max_abs_diff": {"logmel_graph": spec_graph.max_abs_diff, "waveform_graph": wave_graph.max_abs_diff},
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        "cpu": cpu_model(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="bundle .ckpt or run folder (best fold)")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length fed in (default 5)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(bench(args.checkpoint, args.seconds, args.runs, args.warmup), indent=2))


if __name__ == "__main__":
    main()
