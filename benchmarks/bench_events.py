"""Event tables on synthetic soundscapes: where a model's events land against where the sounds were placed.

Nothing is trained: each fold's own bundle (``RUN/fold_K/model.ckpt``, its calibrated ``reject_below``)
finds the events of soundscapes built from its own test fold (the clips ``RUN/fold_K/predictions.csv``
lists), so every placed clip is one the model never saw. Per fold, from ``--seed``, each recording is:

- ``--min-seconds`` to ``--max-seconds`` (30-60 s) of background: pink and brown noise in a random mix at
  ``--background-db`` dBFS RMS, with quiet stretches (about ``--quiet`` of the time, 60 dB lower, 50 ms
  fades) where only the level gate can say "nothing";
- 2-5 of the fold's test clips at random times, at least ``--separation`` s apart, never overlapping, each
  at a random SNR in ``--snr`` dB against the background level (the clip's RMS over its sound). Each clip is
  first trimmed to its sound: from its first to its last 50-ms frame within 35 dB of its loudest frame
  (:func:`active_span`), so the reference onset and offset are where sound is, not the clip's silent padding.
  The mix is scaled down if it would clip (the SNRs stay).

``Predictor.detect_events`` (window, hop and event settings from the flags, defaults as the CLI's) makes the
event table, and ``sed_eval``'s event-based metrics score it against the placed clips: F1, precision, recall
and error rate with a 1-s onset collar (the headline; ``onset_offset``: also the offset within
max(1 s, half the event)), per fold and pooled over folds. False alarms per minute of background: detected
events overlapping no placed clip, over the recordings' time outside the placed clips.

``--source train`` builds the soundscapes of fold K's model from the next fold's clips instead (clips that
model was trained on): the data for choosing event settings without looking at a test fold.

Usage (about 3 minutes for 4 recordings per fold of the mn04 probe on 2 cores)::

    python benchmarks/bench_events.py --run runs/issue25/mn04_probe --data ../shared/esc50 --seed 0 \\
        --recordings 4 --out runs/issue25/events.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from esclab.fsutil import atomic_write
from esclab.inference import Predictor
from esclab.inference.events import EventSettings

FRAME_S = 0.05  # frames of the trim rule and the fades
TRIM_DB = 35.0  # a clip's sound: its frames within this of its loudest frame
QUIET_DB = 60.0  # how much lower the background is in its quiet stretches


@dataclass
class Placed:
    """A reference event: where a test clip was placed, its class, the clip and its SNR."""

    onset: float
    offset: float
    label: str
    clip: str
    snr_db: float


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of noise with power ~ 1/f**exponent (1: pink, 2: brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = f[1] if len(f) > 1 else 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return noise / np.sqrt(np.mean(noise**2))


def rms_db(wave: np.ndarray) -> float:
    return float(10 * np.log10(max(np.mean(np.square(wave, dtype=np.float64)), 1e-20)))


def active_span(wave: np.ndarray, rate: int, frame_s: float = FRAME_S, below_peak_db: float = TRIM_DB) -> tuple[int, int]:
    """``(start, end)`` samples of a clip's sound: its first to last frame within ``below_peak_db`` of its
    loudest frame (frames of ``frame_s``); the whole clip when it is all silence."""
    frame = max(1, int(frame_s * rate))
    n = len(wave) // frame
    if n == 0:
        return 0, len(wave)
    power = np.mean(np.square(wave[:n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    if power.max() <= 0:
        return 0, len(wave)
    loud = np.flatnonzero(10 * np.log10(np.maximum(power, 1e-20) / power.max()) >= -below_peak_db)
    return int(loud[0] * frame), int(min(len(wave), (loud[-1] + 1) * frame))


def quiet_envelope(n: int, rate: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A gain of 1 with stretches of ``10**(-QUIET_DB/20)`` (2-6 s each, about ``fraction`` of ``n``), 50-ms fades."""
    gain = np.ones(n)
    quiet_s, target = 0.0, fraction * n / rate
    while quiet_s < target:
        length = min(rng.uniform(2.0, 6.0), target - quiet_s + 0.5)
        start = int(rng.uniform(0, max(0.0, n / rate - length)) * rate)
        gain[start:start + int(length * rate)] = 10 ** (-QUIET_DB / 20)
        quiet_s += length
    fade = max(1, int(FRAME_S * rate))
    return np.convolve(np.pad(gain, (fade // 2, fade - 1 - fade // 2), mode="edge"), np.ones(fade) / fade, "valid")


def place_times(lengths: list[float], total: float, separation: float, rng: np.random.Generator) -> list[float] | None:
    """Onsets of events of ``lengths`` (in order) in ``[0, total]``, at least ``separation`` apart and from
    the ends; ``None`` when they do not fit."""
    free = total - sum(lengths) - (len(lengths) + 1) * separation
    if free < 0:
        return None
    gaps = np.diff(np.r_[0.0, np.sort(rng.uniform(0, free, len(lengths)))])
    onsets, t = [], 0.0
    for gap, length in zip(gaps, lengths, strict=True):
        t += separation + gap
        onsets.append(t)
        t += length
    return onsets


def build_soundscape(clips: pd.DataFrame, waves: dict[str, np.ndarray], rate: int, rng: np.random.Generator,
                     args: argparse.Namespace) -> tuple[np.ndarray, list[Placed]]:
    """One recording and its reference events (see the module notes)."""
    total = float(rng.uniform(args.min_seconds, args.max_seconds))
    n = int(total * rate)
    mix = rng.uniform(0, 1)
    wave = (mix * colored_noise(n, 1.0, rng) + (1 - mix) * colored_noise(n, 2.0, rng))
    wave *= 10 ** (args.background_db / 20) / np.sqrt(np.mean(wave**2))
    if args.quiet > 0:
        wave *= quiet_envelope(n, rate, args.quiet, rng)
    count = int(rng.integers(args.min_events, args.max_events + 1))
    for _ in range(100):
        chosen = clips.iloc[rng.choice(len(clips), size=min(count, len(clips)), replace=False)]
        pieces = []
        for path in chosen["path"]:
            start, end = active_span(waves[path], rate)
            pieces.append(waves[path][start:end])
        onsets = place_times([len(p) / rate for p in pieces], total, args.separation, rng)
        if onsets is not None:
            break
        count = max(args.min_events, count - 1)  # too many long clips for this length: fewer, or others
    else:
        raise ValueError(f"{args.min_events} clips do not fit in {total:.1f} s, {args.separation:g} s apart")
    placed = []
    for (_, clip), piece, onset in zip(chosen.iterrows(), pieces, onsets, strict=True):
        snr = float(rng.uniform(*args.snr))
        gain = 10 ** ((args.background_db + snr - rms_db(piece)) / 20)
        a = int(onset * rate)
        wave[a:a + len(piece)] += gain * piece
        placed.append(Placed(a / rate, (a + len(piece)) / rate, clip["label"], Path(clip["path"]).name, snr))
    peak = np.max(np.abs(wave))
    return (wave * (0.99 / peak if peak > 0.99 else 1.0)).astype(np.float32), placed


def fold_clips(run: Path, fold: int, data: Path | None) -> pd.DataFrame:
    """The fold's test clips (``path``, ``label``), paths resolved against ``data`` when relative."""
    clips = pd.read_csv(run / f"fold_{fold}" / "predictions.csv", usecols=["path", "label"])
    if data is not None:
        clips["path"] = [str(p if Path(p).is_absolute() else data / p) for p in clips["path"]]
    return clips


def event_dicts(name: str, events: list) -> list[dict[str, object]]:
    return [{"filename": name, "event_label": e.label, "onset": e.onset, "offset": e.offset} for e in events]


def false_alarms(estimated: list, reference: list[Placed]) -> int:
    """Detected events that overlap no reference event."""
    return sum(all(e.offset <= r.onset or e.onset >= r.offset for r in reference) for e in estimated)


class Scores:
    """sed_eval's event-based metrics (onset only, and onset + offset) and false alarms over recordings."""

    def __init__(self, class_names: list[str]):
        import sed_eval  # the dev extra; imported here so the module loads (for its helpers) without it

        self.onset = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=class_names, t_collar=1.0, evaluate_onset=True, evaluate_offset=False)
        self.onset_offset = sed_eval.sound_event.EventBasedMetrics(
            event_label_list=class_names, t_collar=1.0, percentage_of_length=0.5)
        self.false_alarms, self.background_s, self.recordings = 0, 0.0, 0
        self.n_reference = self.n_estimated = 0

    def add(self, name: str, duration: float, reference: list[Placed], estimated: list) -> None:
        ref, est = event_dicts(name, reference), event_dicts(name, estimated)
        self.onset.evaluate(ref, est)
        self.onset_offset.evaluate(ref, est)
        self.false_alarms += false_alarms(estimated, reference)
        self.background_s += duration - sum(r.offset - r.onset for r in reference)
        self.recordings += 1
        self.n_reference += len(reference)
        self.n_estimated += len(estimated)

    def summary(self) -> dict[str, object]:
        def metrics(m) -> dict[str, float]:
            f, e = m.results_overall_metrics()["f_measure"], m.results_overall_metrics()["error_rate"]
            return {"f1": f["f_measure"], "precision": f["precision"], "recall": f["recall"],
                    "error_rate": e["error_rate"], "deletion_rate": e["deletion_rate"],
                    "insertion_rate": e["insertion_rate"], "substitution_rate": e["substitution_rate"]}

        return {"recordings": self.recordings, "reference_events": self.n_reference,
                "detected_events": self.n_estimated, "onset": metrics(self.onset),
                "onset_offset": metrics(self.onset_offset), "false_alarms": self.false_alarms,
                "background_minutes": round(self.background_s / 60, 2),
                "false_alarms_per_minute": self.false_alarms / max(self.background_s / 60, 1e-9)}


def machine() -> dict[str, object]:
    """The CPU's model name and the vector flags that matter here (from ``/proc/cpuinfo``), threads, torch's view."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M).group(1).split()) if "flags" in cpuinfo else set()
    return {"cpu": model.group(1) if model else platform.processor() or platform.machine(),
            "flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16"} or f.startswith("amx")),
            "threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(), "torch": torch.__version__}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = EventSettings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="finished run folder (fold_K/model.ckpt, fold_K/predictions.csv)")
    p.add_argument("--data", help="dataset folder that relative paths in predictions.csv are under")
    p.add_argument("--out", required=True, help="JSON file for the result")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recordings", type=int, default=4, help="soundscapes per fold (default 4)")
    p.add_argument("--folds", help="comma-separated folds (default: every fold_K with a bundle)")
    p.add_argument("--source", choices=("test", "train"), default="test",
                   help="test: each fold's test clips (default); train: the next fold's (for choosing settings)")
    p.add_argument("--min-seconds", type=float, default=30.0)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--min-events", type=int, default=2)
    p.add_argument("--max-events", type=int, default=5)
    p.add_argument("--separation", type=float, default=3.0, help="least time between placed clips (default 3 s)")
    p.add_argument("--background-db", type=float, default=-35.0, help="background RMS in dBFS (default -35)")
    p.add_argument("--snr", type=float, nargs=2, default=(5.0, 20.0), metavar=("LOW", "HIGH"),
                   help="SNR range of the placed clips in dB (default 5 20)")
    p.add_argument("--quiet", type=float, default=0.2, help="share of background time 60 dB quieter (default 0.2)")
    p.add_argument("--window", type=float, help="window in s (default: the CLI's event window)")
    p.add_argument("--hop", type=float, help="hop in s (default: the CLI's event hop)")
    p.add_argument("--median", type=int, default=defaults.median)
    p.add_argument("--min-duration", type=float, default=defaults.min_duration_s,
                   help="shortest event in s (default: 3/4 of the window)")
    p.add_argument("--merge-gap", type=float, default=defaults.merge_gap_s)
    p.add_argument("--min-level", type=float, default=defaults.min_level_db)
    p.add_argument("--reject-below", type=float, help="threshold (default: each bundle's calibrated one; 0: off)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    run, data = Path(args.run), Path(args.data) if args.data else None
    settings = EventSettings(args.median, args.min_duration, args.merge_gap, args.min_level)
    all_folds = sorted(int(p.parent.name.removeprefix("fold_")) for p in run.glob("fold_*/model.ckpt"))
    folds = [int(k) for k in args.folds.split(",")] if args.folds else all_folds
    start = time.perf_counter()
    pooled, per_fold, recordings = None, [], []
    for fold in folds:
        predictor = Predictor.from_checkpoint(run / f"fold_{fold}" / "model.ckpt", args.reject_below)
        source = fold if args.source == "test" else all_folds[(all_folds.index(fold) + 1) % len(all_folds)]
        clips = fold_clips(run, source, data)
        rng = np.random.default_rng([args.seed, fold])
        pooled = pooled or Scores(predictor.class_names)
        scores, waves = Scores(predictor.class_names), {}
        for i in range(args.recordings):
            needed = clips.iloc[rng.choice(len(clips), size=min(len(clips), 2 * args.max_events), replace=False)]
            waves |= {p: predictor.load(p) for p in needed["path"] if p not in waves}
            wave, placed = build_soundscape(needed, waves, predictor.sample_rate, rng, args)
            result = predictor.detect_events(wave, predictor.sample_rate, args.window, args.hop, settings,
                                             name=f"fold{fold}_{i}")
            for s in (scores, pooled):
                s.add(result.file, result.duration_s, placed, result.events)
            recordings.append({"fold": fold, "name": result.file, "duration_s": round(result.duration_s, 3),
                               "reference": [vars(p) for p in placed],
                               "detected": [vars(e) for e in result.events]})
        per_fold.append({"fold": fold, "clips_from_fold": source, "reject_below": predictor.reject_below,
                         **scores.summary()})
        print(f"fold {fold}: onset F1 {per_fold[-1]['onset']['f1']:.3f}, "
              f"false alarms {per_fold[-1]['false_alarms_per_minute']:.2f}/min", flush=True)
    result = {
        "run": str(run), "source": args.source, "seed": args.seed, "recordings_per_fold": args.recordings,
        "soundscape": {k: getattr(args, k) for k in ("min_seconds", "max_seconds", "min_events", "max_events",
                                                     "separation", "background_db", "snr", "quiet")},
        "trim": {"frame_s": FRAME_S, "below_peak_db": TRIM_DB},
        "window_s": args.window, "hop_s": args.hop,
        "settings": {f.name: getattr(settings, f.name) for f in fields(settings)},
        "metric": "sed_eval EventBasedMetrics, t_collar=1.0 (onset: evaluate_offset=False; onset_offset: "
                  "percentage_of_length=0.5)",
        "folds": per_fold, "pooled": pooled.summary() if pooled else None,
        "seconds": round(time.perf_counter() - start, 1), "machine": machine(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "recordings": recordings,
    }
    atomic_write(Path(args.out), json.dumps(result, indent=2))
    if pooled:
        p = result["pooled"]
        print(f"pooled over {len(folds)} folds, {p['recordings']} recordings, {p['reference_events']} events: "
              f"onset F1 {p['onset']['f1']:.3f} (P {p['onset']['precision']:.3f}, R {p['onset']['recall']:.3f}, "
              f"ER {p['onset']['error_rate']:.3f}); false alarms {p['false_alarms_per_minute']:.2f} per minute "
              f"of background; {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
