"""The ``esclab`` command: argparse subcommands, each a few lines that call the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from esclab import __version__

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Handler, Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[[Handler], Handler]:
    """Register a subcommand handler with its argument builder."""

    def wrap(fn: Handler) -> Handler:
        _COMMANDS[name] = (fn, arguments, help)
        return fn

    return wrap


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="configs/experiment/paper_cnn.yaml", help="experiment YAML")
    p.add_argument("--data", help="dataset folder (sets data.root; default $ESCLAB_DATA or ./data/ESC-50)")
    p.add_argument("--folds", help="comma-separated folds to run, e.g. 1,2")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, repeatable: --set train.max_epochs=5")


def _cv_args(p: argparse.ArgumentParser) -> None:
    _experiment_args(p)
    p.add_argument("--out", help="run folder (default runs/NAME-TIME); an existing one resumes")
    p.add_argument("--devices", help="Lightning devices (sets train.devices)")
    p.add_argument("--strategy", help="Lightning strategy, e.g. ddp (sets train.strategy)")


def load_experiment(args: argparse.Namespace):
    """The experiment config from ``--config``, ``--data``, ``--folds``, ``--devices``, ``--strategy``, ``--set``."""
    from esclab.config import load_config

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.root={args.data}")
    if args.folds:
        overrides.append(f"data.folds=[{args.folds}]")
    for key in ("devices", "strategy"):
        value = getattr(args, key, None)
        if value:
            overrides.append(f"train.{key}={value}")
    return load_config(args.config, overrides)


@command("cv", "cross-validate an experiment on the dataset's folds", _cv_args)
def cmd_cv(args: argparse.Namespace) -> int:
    from esclab.train.cv import run_cv

    result = run_cv(load_experiment(args), args.out)
    s = result.summary
    if not s:  # a non-zero DDP rank: rank 0 reports
        return 0
    print(f"{s['name']}: accuracy {100 * s['accuracy_mean']:.1f} ± {100 * s['accuracy_std']:.1f} % "
          f"over folds {list(s['folds'])}, macro-F1 {100 * s['macro_f1_mean']:.1f} %, skipped {s['skipped']} "
          f"clip(s); results in {result.out_dir}")
    return 0


@command("features", "build the log-mel cache for a dataset", _experiment_args)
def cmd_features(args: argparse.Namespace) -> int:
    from esclab.train.cv import prepare_data

    cfg = load_experiment(args)
    data = prepare_data(cfg, check_folds=False)
    print(f"{len(data.table)} clips cached ({data.specs.shape[1]} mels x {data.specs.shape[2]} frames) in "
          f"{cfg.features.cache_dir}; {len(data.table.skipped)} skipped")
    for path, reason in data.table.skipped:
        print(f"  skipped {path}: {reason}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esclab", description="Environmental sound classification toolkit.")
    parser.add_argument("--version", action="version", version=f"esclab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (fn, arguments, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(handler=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; known errors print one clear line and exit 2."""
    from esclab.config import ConfigError
    from esclab.data import DatasetNotFoundError
    from esclab.train.cv import RunConflictError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return args.handler(args)
    except (ConfigError, DatasetNotFoundError, RunConflictError, FileNotFoundError) as err:
        print(f"esclab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

