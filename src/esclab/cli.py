"""The ``esclab`` command: argparse subcommands, each a few lines that call the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from esclab import __version__
from esclab.errors import EsclabError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register a subcommand handler with its argument builder."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (fn, arguments, help)
        return fn

    return wrap


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="paper_cnn",
                   help="experiment YAML, or the name of a packaged experiment (e.g. mn04_probe; default paper_cnn)")
    p.add_argument("--data", help="dataset folder (sets data.root; default $ESCLAB_DATA or ./data/ESC-50)")
    p.add_argument("--folds", help="comma-separated folds to run, e.g. 1,2")
    p.add_argument("--exclude-folds", metavar="FOLDS",
                   help="comma-separated folds the run never reads (sets data.exclude_folds): inner "
                        "cross-validation, e.g. --exclude-folds 1 --folds 2,3,4,5")
    p.add_argument("--allow-missing", action="store_true",
                   help="run an ESC-50 copy with missing or unreadable clips (sets data.allow_missing)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable: --set train.max_epochs=5")


def _cv_args(p: argparse.ArgumentParser) -> None:
    _experiment_args(p)
    p.add_argument("--out", help="run folder (default runs/NAME-TIME); an existing one resumes")
    p.add_argument("--devices", help="Lightning devices (sets train.devices)")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp (sets train.strategy)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    p.add_argument("--robustness-clips", type=int, default=100,
                   help="test clips per fold for the report's robustness curves (0: all)")


def load_experiment(args: argparse.Namespace):
    """The experiment config from ``--config``, ``--data``, ``--folds``, ``--exclude-folds``, ``--allow-missing``,
    ``--devices``, ``--strategy``, ``--set``."""
    from esclab.config import load_config

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.folds:
        overrides.append(f"data.folds=[{args.folds}]")
    if args.exclude_folds:
        overrides.append(f"data.exclude_folds=[{args.exclude_folds}]")
    if args.allow_missing:
        overrides.append("data.allow_missing=true")
    for key in ("devices", "strategy"):
        value = getattr(args, key, None)
        if value:
            overrides.append(f"train.{key}={value}")
    return load_config(args.config, overrides)


@command("cv", "cross-validate an experiment on the dataset's folds", _cv_args)
def cmd_cv(args: argparse.Namespace) -> int:
    from esclab.train.cv import default_run_dir, is_main_process, run_cv

    cfg = load_experiment(args)
    out = Path(args.out) if args.out else default_run_dir(cfg)
    if is_main_process():  # DDP ranks > 0 run this command too; rank 0 speaks
        print(f"{cfg.name}: model {cfg.model.name} ({cfg.train.mode}) on {cfg.data.dataset} data, folds "
              f"{cfg.data.folds}; run folder {out}", flush=True)
    result = run_cv(cfg, out)
    s = result.summary
    if not s:  # a non-zero DDP rank: rank 0 reports
        return 0
    for fold, m in sorted(result.fold_metrics.items()):
        print(f"fold {fold}: accuracy {100 * m['accuracy']:.1f} %, macro-F1 {100 * m['macro_f1']:.1f} %")
    print(f"{s['name']}: accuracy {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} % "
          f"over folds {list(s['folds'])}, macro-F1 {100 * s['macro_f1_mean']:.1f} %, skipped {s['skipped']} "
          f"clip(s); results in {result.out_dir}", flush=True)
    for warning in s.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    _finish_run(result.out_dir, args)
    return 0


def _finish_run(run_dir: Path, args: argparse.Namespace) -> None:
    """The run's pictures, then (unless ``--no-report``) its HTML report."""
    from esclab.evaluate.run_figures import draw_run_figures

    draw_run_figures(run_dir)
    if not args.no_report:
        _build_report_after_run(run_dir, args.robustness_clips or None)


def _build_report_after_run(run_dir, robustness_clips: int | None) -> None:
    """The run's HTML report; a failure is logged and never loses the trained folds."""
    from esclab.evaluate.report import ReportOptions, build_report

    try:
        report = build_report(run_dir, options=ReportOptions(robustness_clips=robustness_clips))
    except Exception:  # the results are on disk; the report can be rebuilt with `esclab report`
        logging.getLogger("esclab").exception("the report failed; the run's results are saved, rebuild it "
                                              "with: esclab report %s", run_dir)
        return
    print(f"report: {report.html}")


@command("features", "build the log-mel cache for a dataset", _experiment_args)
def cmd_features(args: argparse.Namespace) -> int:
    from esclab.data.prepare import prepare_data

    cfg = load_experiment(args)
    data = prepare_data(cfg, check_folds=False)
    print(f"{len(data.table)} clips cached ({data.specs.shape[1]} mels x {data.specs.shape[2]} frames) in "
          f"{cfg.features.cache_dir}; {len(data.table.skipped)} skipped")
    for skipped in data.table.skipped:
        print(f"  skipped {skipped.path} (fold {skipped.fold}): {skipped.reason}")
    return 0


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*cnn*'")


@command("models", "list registered models", _models_args)
def cmd_models(args: argparse.Namespace) -> int:
    from esclab.models import list_models

    print("\n".join(list_models(args.pattern)))
    return 0


def _show_args(p: argparse.ArgumentParser) -> None:
    _experiment_args(p)


@command("config", "print the resolved experiment config", _show_args)
def cmd_config(args: argparse.Namespace) -> int:
    from esclab.config import to_dict

    print(json.dumps(to_dict(load_experiment(args)), indent=2))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text: str) -> float:
    from esclab.calibration import check_threshold

    try:
        return check_threshold(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _odd_int(text: str) -> int:
    value = _positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _event_args(p: argparse.ArgumentParser) -> None:
    """``--events`` and its settings, for ``predict`` and ``tag``. The defaults are
    :class:`esclab.inference.events.EventSettings`'s (stated here so building the parser imports no torch)."""
    g = p.add_argument_group("events (with --long)", "one row per sound event; --window defaults to 2 s (at most "
                             "the clip length) and --hop to 0.5 s")
    g.add_argument("--events", metavar="CSV", help="write the event table: file,onset,offset,label,score (seconds); "
                   "--format json adds each file's events")
    g.add_argument("--median", type=_odd_int, metavar="N",
                   help="median filter over each class's window scores, in windows (odd; default 3)")
    g.add_argument("--min-duration", type=_seconds, metavar="S",
                   help="drop events shorter than S seconds (default: 3/4 of the window)")
    g.add_argument("--merge-gap", type=_seconds, metavar="S",
                   help="join events of one class less than S seconds apart (default 1.5)")
    g.add_argument("--min-level", type=float, metavar="DBFS",
                   help="windows quieter than this RMS level are silence (default -60 dBFS)")


def _event_settings(args: argparse.Namespace):
    """The ``EventSettings`` of ``--events`` (``None`` without it); ``--events`` without ``--long`` is a usage error."""
    if args.events is None:
        return None
    if not args.long:
        args.usage_error("--events needs --long: events are found in sliding windows over whole recordings")
    from esclab.inference.events import EventSettings

    given = {"median": args.median, "min_duration_s": args.min_duration, "merge_gap_s": args.merge_gap,
             "min_level_db": args.min_level}
    return EventSettings(**{name: value for name, value in given.items() if value is not None})


def _write_events(args: argparse.Namespace, results: list) -> None:
    """With ``--events``: the event table of ``results``, written atomically; a count line on stderr."""
    if args.events is None:
        return
    from esclab.fsutil import atomic_write
    from esclab.inference.events import events_csv

    atomic_write(args.events, events_csv(results))
    print(f"{args.command}: {sum(len(r.events) for r in results)} events in {args.events}", file=sys.stderr)


def _scoring_args(p: argparse.ArgumentParser, top_k: int, window: str, reject: str) -> None:
    """The arguments of ``predict`` and ``tag``: what to score, how many classes, the windows of ``--long``."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively)")
    p.add_argument("--top-k", type=_positive_int, default=top_k, help=f"classes per row (default {top_k})")
    p.add_argument("--window", type=float, help=f"--long window in seconds (default: {window})")
    p.add_argument("--hop", type=float, help="--long hop in seconds (default: half the window)")
    p.add_argument("--workers", type=_positive_int, help="threads that decode and score (default: CPUs, at most 8)")
    p.add_argument("--reject-below", type=_probability, metavar="P",
                   help=f"answer 'unknown' when the best score is below P, in [0, 1] (default: {reject})")
    _event_args(p)


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="bundle .ckpt, or a run folder (uses its best fold)")
    _scoring_args(p, top_k=3, window="the model's clip length",
                  reject="the bundle's threshold, chosen for 5 %% false rejections when it was calibrated; 0: off")
    p.add_argument("--format", default="table", choices=("table", "json", "csv"),
                   help="output; with --long, table and csv list merged segments, json also every window")
    p.add_argument("--long", action="store_true", help="sliding windows over whole recordings")
    p.add_argument("--plot", metavar="DIR", help="--long: write a timeline PNG per file to DIR")


def _score_paths(scorer, args: argparse.Namespace, plot_dir: str | None = None, events=None) -> list:
    """``args.paths`` scored by ``scorer`` (an ``esclab.inference.Scorer``): one ``Prediction`` per file, with its
    events when ``events`` (``EventSettings``) is given.

    Progress, then a count and rate line, go to stderr, so stdout stays data.
    """
    from esclab.inference import collect_audio_files, predict_paths
    from esclab.progress import Progress

    files = collect_audio_files(args.paths)
    unit = "file" if args.long else "clip"
    with Progress(len(files), args.command, every_s=5.0, unit=unit) as progress:
        results = predict_paths(scorer, files, args.top_k, args.long, args.window, args.hop, plot_dir,
                                args.workers, lambda _result: progress.update(), events)
    failed = sum(r.error is not None for r in results)
    print(f"{args.command}: {len(results)} {unit}s ({failed} failed) in {progress.elapsed:.1f} s, "
          f"{progress.rate:.1f} {unit}s/s", file=sys.stderr, flush=True)
    return results


@command("predict", "classify audio files with a trained model (progress and clips/s on stderr); exit 1 if any "
         "file failed", _predict_args)
def cmd_predict(args: argparse.Namespace) -> int:
    from esclab.inference import Predictor
    from esclab.inference.results import format_results

    events = _event_settings(args)
    predictor = Predictor.from_checkpoint(args.checkpoint, args.reject_below)
    results = _score_paths(predictor, args, args.plot, events)
    print(format_results(results, args.format, args.long, score=predictor.score_column))
    _write_events(args, results)
    return int(any(r.error is not None for r in results))


def _tag_args(p: argparse.ArgumentParser) -> None:
    _scoring_args(p, top_k=5, window="5", reject="off: tagging has no bundle to calibrate")
    p.add_argument("--long", action="store_true", help="a timeline: sliding windows with their top classes")
    p.add_argument("--weights", default="efficientat:mn04_as",
                   help="AudioSet weights by name (default efficientat:mn04_as; also mn10_as, mn40_as, ...)")
    p.add_argument("--format", default="table", choices=("table", "json", "csv"),
                   help="output (default table); with --long, one row per window")


@command("tag", "tag audio with AudioSet classes, no training (multi-label sigmoid scores; progress and clips/s "
         "on stderr); exit 1 if any file failed", _tag_args)
def cmd_tag(args: argparse.Namespace) -> int:
    from esclab.inference import Tagger
    from esclab.inference.results import format_results

    events = _event_settings(args)
    tagger = Tagger.from_name(args.weights)
    tagger.reject_below = args.reject_below
    results = _score_paths(tagger, args, events=events)
    print(format_results(results, args.format, windows=args.long, score=tagger.score_column))
    _write_events(args, results)
    return int(any(r.error is not None for r in results))


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="bundle .ckpt, or a run folder (uses its best fold)")
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    p.add_argument("--out", help="output file (default: beside the checkpoint, .onnx or .pt)")
    p.add_argument("--waveform", action="store_true",
                   help="export waveform -> logits (STFT and log-mel included) instead of log-mel -> logits")


@command("export", "export a model for onnxruntime or TorchScript, checked against PyTorch", _export_args)
def cmd_export(args: argparse.Namespace) -> int:
    from esclab.export import default_export_path, export_bundle
    from esclab.inference import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint)
    out = args.out or default_export_path(predictor.checkpoint, args.format, args.waveform)
    print(export_bundle(predictor.bundle, out, args.format, args.waveform).summary())
    return 0


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="bundle .ckpt, or a run folder (uses its best fold)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest audio in seconds (default 600)")
    p.add_argument("--max-batch", type=_positive_int, default=8,
                   help="most clips of concurrent requests in one forward pass (default 8; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="longest a forward pass waits for more requests (default 5 ms)")
    p.add_argument("--reject-below", type=_probability, metavar="P",
                   help="answer 'unknown' when the best probability is below P (default: the bundle's threshold; 0: off)")


@command("serve", "serve a model: JSON API and a web page to upload a sound", _serve_args)
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from esclab.inference import Predictor
    from esclab.serve import create_app

    app = create_app(Predictor.from_checkpoint(args.checkpoint, args.reject_below), args.max_mb, args.max_seconds, args.max_batch,
                     args.max_wait_ms)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a finished run folder (esclab cv --out)")
    p.add_argument("--out", help="HTML file (default RUN_DIR/report.html); report.json goes beside it")
    p.add_argument("--no-robustness", action="store_true", help="skip the noise and speed curves (the slow part)")
    p.add_argument("--robustness-clips", type=int, metavar="N", help="clips per fold for the curves (default all)")
    p.add_argument("--max-gallery", type=int, default=24, metavar="N", help="misclassified clips shown (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seeds clip sampling and noise (default 0)")


@command("report", "rebuild a run's self-contained HTML report and report.json, without retraining", _report_args)
def cmd_report(args: argparse.Namespace) -> int:
    from esclab.evaluate.report import ReportOptions, build_report

    # A missing or unreadable fold bundle (BundleError) becomes one error line in main().
    result = build_report(args.run_dir, args.out, ReportOptions(
        robustness=not args.no_robustness, robustness_clips=args.robustness_clips, max_gallery=args.max_gallery,
        seed=args.seed))
    print(f"report: {result.html} (numbers: {result.json})")
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more finished run folders")
    p.add_argument("--out", required=True, help="HTML file; the JSON goes beside it")
    p.add_argument("--allow-different-tests", action="store_true",
                   help="compare runs tested on different clips (other folds, skipped clips); the page says how")


@command("compare", "compare runs: accuracy, per-class accuracy and paired tests over folds, in one HTML page",
         _compare_args)
def cmd_compare(args: argparse.Namespace) -> int:
    from esclab.evaluate.compare import compare_runs

    # fewer than two runs, other classes, other test clips: CompareError -> main()
    result = compare_runs(args.runs, args.out, allow_different_tests=args.allow_different_tests)
    print(f"comparison: {result.html} (numbers: {result.json})")
    return 0


def _weights_list(text: str) -> list[float]:
    """``"1,3"`` -> ``[1.0, 3.0]``; argparse turns the ValueError of a typo into a one-line usage error."""
    return [float(w) for w in text.split(",")]


def _ensemble_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="finished run folders over the same folds, classes and front end")
    p.add_argument("--out", required=True, help="the ensemble's run folder (new)")
    p.add_argument("--weights", type=_weights_list, help="comma-separated weight per run (default: equal)")
    p.add_argument("--name", help="the run's name (default: the runs' names joined by '+')")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report")
    p.add_argument("--robustness-clips", type=int, default=100,
                   help="test clips per fold for the report's robustness curves (0: all)")


@command("ensemble", "combine finished runs into the run of their ensemble (mean probabilities; one bundle per fold)",
         _ensemble_args)
def cmd_ensemble(args: argparse.Namespace) -> int:
    from esclab.train.ensemble import ensemble_runs

    result = ensemble_runs(args.runs, args.out, weights=args.weights, name=args.name)
    s = result.summary
    for fold, m in sorted(result.fold_metrics.items()):
        print(f"fold {fold}: accuracy {100 * m['accuracy']:.1f} %, macro-F1 {100 * m['macro_f1']:.1f} %")
    print(f"{s['name']}: accuracy {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} % over folds "
          f"{list(s['folds'])}; results in {result.out_dir}", flush=True)
    _finish_run(result.out_dir, args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esclab", description="Environmental sound classification toolkit.")
    parser.add_argument("--version", action="version", version=f"esclab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and everything Lightning says (hidden by default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (fn, arguments, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(handler=fn, usage_error=p.error)
    return parser


# Commands that never import Lightning: the console need not import it for them (seconds saved).
WITHOUT_LIGHTNING = frozenset({"features", "predict", "tag", "serve", "models", "config"})  # never import it


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script.

    An error the user can fix (:class:`~esclab.errors.EsclabError`) prints one line and exits 2 (``-v``: its
    traceback first); any other exception is a bug and propagates with its full traceback.
    """
    from esclab.console import configure_console

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `esclab`: the help, not an error
        parser.print_help()
        return 0
    configure_console(args.verbose, lightning=args.command not in WITHOUT_LIGHTNING)
    try:
        return args.handler(args)
    except EsclabError as err:
        if args.verbose:
            traceback.print_exception(err)
        print(f"esclab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

