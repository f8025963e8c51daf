"""Typed configuration: dataclasses, YAML composition, dotted overrides, validation.

An experiment YAML names one file per concern under ``defaults`` and states only
what differs::

    name: mn04_finetune
    defaults:
      features: kaldi_logmel_32k  # configs/features/kaldi_logmel_32k.yaml (its _global_ sets audio.sample_rate)
      augment: mn_online          # configs/augment/mn_online.yaml
      model: mn04                 # configs/model/mn04.yaml (a model without a file: its family's defaults)
      train: default              # configs/train/default.yaml
    train:
      max_epochs: 60

The merge order is: dataclass defaults <- group files <- the experiment's own keys
<- ``--set key=value`` overrides. ``extends: OTHER`` makes an experiment a variant of another: OTHER's
defaults and keys first, then its own. ``--set augment=strong`` (a group name, no dot) swaps the
group file, as Hydra does. Unknown keys and bad values fail loudly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from esclab.errors import EsclabError
from esclab.fsutil import atomic_write

CONFIG_GROUPS = ("data", "audio", "features", "augment", "model", "train")
DEFAULT_SAMPLE_RATE = 22050  # the paper's rate: every clip is resampled to it unless audio.sample_rate says otherwise


class ConfigError(EsclabError, ValueError):
    """A configuration value or file is wrong; the message says which and why."""


@dataclass
class DataConfig:
    """Which clips, which folds.

    ``dataset``: ``esc50``, ``esc10`` (the ESC-10 subset of ESC-50) or ``folder``
    (any audio plus a CSV with ``path,label[,fold][,group]``).
    ``root``: dataset folder; ``None`` means ``$ESCLAB_DATA``, then ``./data/ESC-50`` (for ``folder``: the CSV's folder).
    ``csv``: for ``folder``, the CSV; a relative one is looked up in ``root`` first, then in the current
    directory, and the relative paths inside it are relative to ``root``.
    ``val_fraction``: share of the training folds held out for validation, split by ``group`` (the
    source recording) so no recording is on both sides.
    ``allow_missing``: run an ESC-50 copy whose metadata names clips that are missing or unreadable
    (otherwise the run stops before any work and names them).
    ``exclude_folds``: folds whose clips the run never reads (no features, no training, no test): inner
    cross-validation over the other folds, so a recipe is chosen without its outer test fold
    (``exclude_folds: [1]`` with ``folds: [2, 3, 4, 5]`` trains each inner fold on the other three).
    """

    dataset: str = "esc50"
    root: str | None = None
    csv: str | None = None
    folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    exclude_folds: list[int] = field(default_factory=list)
    val_fraction: float = 0.1
    num_workers: int = 0
    download: bool = True
    allow_missing: bool = False


@dataclass
class AudioConfig:
    """Decoding: every clip becomes mono at ``sample_rate``, padded or cut to ``duration`` seconds.

    ``band_rate``: when set, audio passes through this rate before ``sample_rate`` (a low-pass at
    ``band_rate / 2``), so a model trained on band-limited data sees the same band at prediction time.
    Cross-validation records the training data's rate here in each bundle when it is below ``sample_rate``.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    duration: float = 5.0
    band_rate: int | None = None

    @property
    def num_samples(self) -> int:
        """Clip length in samples."""
        return int(round(self.duration * self.sample_rate))


@dataclass
class FeatureConfig:
    """The spectrogram front end.

    ``kind``: ``logmel`` (librosa conventions: Slaney mel of the power spectrum, ``power_to_db`` with
    ref=max and ``top_db``) or ``kaldi_logmel`` (EfficientAT's front end for the AudioSet MobileNets:
    pre-emphasis, Kaldi mel triangles, ``ln(mel + 1e-5)``, fixed scaling; ``top_db`` unused).
    """

    kind: str = "logmel"
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    frames: int | None = 215
    standardize: bool = False
    cache_dir: str = "cache/features"

    @property
    def input_size(self) -> tuple[int, int | None]:
        """``(n_mels, frames)``: the spectrogram size every model of the run is built for."""
        return self.n_mels, self.frames


@dataclass
class AugmentConfig:
    """Augmentation settings; each group is a mapping of transform name -> its arguments.

    ``waveform`` transforms run on the CPU before the log-mel (precomputed as a bank of
    ``bank_size`` variants per clip when expensive); ``spectrogram`` transforms and
    ``mixup_alpha`` run in the model front end during training only. ``tta_views`` > 1 scores each
    test clip as the mean prediction over that many circular time shifts of its log-mel.
    ``level_mix_p``: share of each training batch mixed with a partner at the signal level (two clips heard
    at once, ``lam ~ Beta(level_mix_alpha, level_mix_alpha)``), before the spectrogram transforms; like the
    ``level_gain`` transform it needs the level that Kaldi log-mels keep (``features.kind: kaldi_logmel``).
    """

    waveform: dict[str, Any] = field(default_factory=dict)
    spectrogram: dict[str, Any] = field(default_factory=dict)
    mixup_alpha: float = 0.0
    mixup_p: float = 1.0
    bank_size: int = 0
    tta_views: int = 1
    level_mix_p: float = 0.0
    level_mix_alpha: float = 2.0


@dataclass
class ModelConfig:
    """Which network: a registered ``name``, its ``kwargs``, and ``pretrained`` weights (a known name such as
    ``efficientat:mn04_as``, whose front end the run must use, or a file or hub name).
    ``pretrained_partial``: accept weights that leave part of the body at its initialisation (otherwise
    such a load stops the run); what was loaded, skipped and left at init is in each fold's ``metrics.json``.
    """

    name: str = "paper_cnn"
    pretrained: str | None = None
    pretrained_partial: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How each fold learns.

    ``mode``: ``ensemble`` marks a run made by ``esclab ensemble`` from finished runs (nothing to train);
    ``fit`` trains the network with Lightning (all the settings below); ``probe`` freezes a
    pretrained network, embeds every clip once (cached) and fits a standardised logistic regression
    with inverse regularisation ``probe_c`` per fold, folded into the model's linear head; with a
    ``probe_c_grid``, C is chosen per fold by cross-validation over the training folds only.
    ``probe_grid``: candidate embeddings for the probe, each a mapping of ``model.kwargs`` to change (e.g.
    ``{taps: [13, 15], pool: meanmax}``); each fold takes the candidate (and C) with the best
    leave-one-fold-out accuracy over its training folds, the first listed on a tie.
    ``cache_frozen``: for a model with frozen layers (``model.kwargs.frozen_blocks``), train from their
    cached outputs (:mod:`esclab.train.frozen`: the cheapest step; online augmentation then acts on their
    output maps) or, when false, run them at every step on the augmented log-mels (no gradient flows
    through them either way).
    ``head_init``: ``random`` (the model's own initialisation) or ``probe``: before fitting, the linear
    head is set to the linear probe of the training split (``probe_c``), so fine-tuning starts from the
    probe's solution (LP-FT, Kumar et al., ICLR 2022).
    Without a validation split the last epoch is tested; with one, the best validation epoch.
    ``calibrate``: fit a temperature per fold on predictions for clips the fold did not train on and that
    are not its test fold (a probe: leave-one-fold-out over its training folds; ``fit``: the grouped
    validation split; without one the fold stays uncalibrated, with a warning), fold it into the head
    and choose the rejection threshold (``unknown`` below it) for a ``false_rejection`` share of those
    clips (:mod:`esclab.calibration`); with fewer than ``calibration_min_clips`` such clips the fold stays
    uncalibrated (a temperature and a 5 % quantile from a handful of clips would be noise).
    ``calibration_split``: for a ``fit`` without a validation split, the share of the training folds held out
    (grouped by source recording) for calibration only: the tested checkpoint stays the last epoch, and the
    network trains on that many fewer clips (0: none held out, the fold stays uncalibrated).
    ``distill_weight``: share of the loss that matches the linear probe of the training split on the same
    augmented input (:mod:`esclab.train.distill`; temperature ``distill_temperature``); 0: labels only.
    ``freeze_bn_stats``: every BatchNorm of the network keeps its (pretrained) running statistics while
    training (eval mode; its scale and shift still learn). Mixed and augmented batches otherwise re-estimate
    them, which measurably degrades AudioSet features (benchmarks/RESULTS.md, issue 23).
    ``weight_averaging``: ``none``; ``ema``: the tested network is an exponential moving average of the
    weights (decay ``ema_decay`` per optimiser step); ``swa``: the equal-weight average of the weights at the end
    of each epoch; either from epoch ``average_from_epoch`` (zero-based) on (:mod:`esclab.train.averaging`).
    ``wise_alpha``: WiSE-FT (Wortsman et al., CVPR 2022): the tested network is ``(1 - a) * w0 + a * w``, ``w0``
    the weights fitting started from (the pretrained network with the probe's head: needs ``head_init: probe``)
    and ``w`` the trained (averaged) weights; 1: the trained weights as they are, 0: the probe itself.
    ``logger``: where the training curves go besides ``fold_K/logs/metrics.csv`` (always written: the report
    reads it): ``tensorboard`` or ``mlflow`` files under ``fold_K/logs`` too (:mod:`esclab.train.loggers`).
    """

    mode: str = "fit"
    cache_frozen: bool = True
    head_init: str = "random"
    probe_c: float = 1.0
    probe_c_grid: list[float] = field(default_factory=list)
    probe_grid: list[dict[str, Any]] = field(default_factory=list)
    calibrate: bool = True
    false_rejection: float = 0.05
    calibration_min_clips: int = 30
    calibration_split: float = 0.0
    batch_size: int = 32
    max_epochs: int = 60
    max_time_min: float | None = None  # wall-clock cap on training per fold (an equal-compute budget)
    profiler: str | None = None  # Lightning profiler: simple | advanced | pytorch; report in fold_K/
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr_schedule: str = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 4
    min_lr: float = 1e-6
    warmup_epochs: int = 0
    early_stopping_patience: int = 10
    monitor: str = "val_loss"
    label_smoothing: float = 0.0
    distill_weight: float = 0.0
    distill_temperature: float = 2.0
    freeze_bn_stats: bool = False
    weight_averaging: str = "none"
    ema_decay: float = 0.999
    average_from_epoch: int = 0
    wise_alpha: float = 1.0
    precision: str = "32"
    channels_last: bool = True
    seed: int = 42
    num_threads: int | None = None
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    deterministic: bool = True
    progress_bar: bool = True
    logger: str = "csv"
    progressive: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    output_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_CHOICES = {
    "data.dataset": ("esc50", "esc10", "folder"),
    "features.kind": ("logmel", "kaldi_logmel"),
    "train.mode": ("fit", "probe", "ensemble"),
    "train.head_init": ("random", "probe"),
    "train.optimizer": ("adam", "adamw", "sgd"),
    "train.lr_schedule": ("plateau", "cosine", "onecycle", "none"),
    "train.weight_averaging": ("none", "ema", "swa"),
    "train.precision": ("32", "bf16-mixed", "16-mixed", "bf16-true", "auto"),
    "train.monitor": ("val_loss", "val_acc"),
    "train.logger": ("csv", "tensorboard", "mlflow"),
}


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Check ranges and choices; raise :class:`ConfigError` naming the key and the rule."""

    def need(ok: bool, key: str, rule: str, value: Any) -> None:
        if not ok:
            raise ConfigError(f"{key} {rule}, got {value!r}")

    for key, choices in _CHOICES.items():
        group, name = key.split(".")
        value = getattr(getattr(cfg, group), name)
        need(value in choices, key, f"must be one of {choices}", value)
    d, a, f, t = cfg.data, cfg.audio, cfg.features, cfg.train
    need(len(d.folds) > 0 and all(isinstance(k, int) and k >= 1 for k in d.folds), "data.folds",
         "must be a non-empty list of fold numbers >= 1", d.folds)
    need(all(isinstance(k, int) and k >= 1 for k in d.exclude_folds), "data.exclude_folds",
         "must be a list of fold numbers >= 1", d.exclude_folds)
    need(not set(d.folds) & set(d.exclude_folds), "data.exclude_folds",
         f"must not share a fold with data.folds {d.folds} (a left-out fold cannot be tested)", d.exclude_folds)
    need(0.0 <= d.val_fraction < 0.5, "data.val_fraction", "must be in [0, 0.5)", d.val_fraction)
    need(d.dataset != "folder" or bool(d.csv), "data.csv", "is required when data.dataset is 'folder'", d.csv)
    need(a.sample_rate >= 1000, "audio.sample_rate", "must be >= 1000 Hz", a.sample_rate)
    need(a.duration > 0, "audio.duration", "must be > 0 seconds", a.duration)
    need(a.band_rate is None or a.band_rate >= 1000, "audio.band_rate", "must be >= 1000 Hz or null", a.band_rate)
    need(f.n_mels >= 1, "features.n_mels", "must be >= 1", f.n_mels)
    need(f.n_fft >= 16, "features.n_fft", "must be >= 16", f.n_fft)
    need(0 < f.hop_length <= f.n_fft, "features.hop_length", "must be in (0, n_fft]", f.hop_length)
    need(f.win_length is None or 0 < f.win_length <= f.n_fft, "features.win_length", "must be in (0, n_fft]",
         f.win_length)
    nyquist = a.sample_rate / 2
    need(f.fmax is None or f.fmin < f.fmax <= nyquist, "features.fmax", f"must be in (fmin, {nyquist}]", f.fmax)
    need(0 <= f.fmin < nyquist, "features.fmin", f"must be in [0, {nyquist})", f.fmin)
    need(f.top_db is None or f.top_db > 0, "features.top_db", "must be > 0 or null", f.top_db)
    need(f.frames is None or f.frames >= 8, "features.frames", "must be >= 8 or null", f.frames)
    for key in ("input_size", "n_mels"):  # the input size is stated once, in the feature config
        need(key not in cfg.model.kwargs, f"model.kwargs.{key}",
             "is not a model option: models are built for features.n_mels x features.frames", cfg.model.kwargs.get(key))
    need(t.batch_size >= 1, "train.batch_size", "must be >= 1", t.batch_size)
    need(t.max_epochs >= 1, "train.max_epochs", "must be >= 1", t.max_epochs)
    need(t.max_time_min is None or t.max_time_min > 0, "train.max_time_min", "must be > 0 or null", t.max_time_min)
    need(t.profiler in (None, "simple", "advanced", "pytorch"), "train.profiler",
         "must be one of simple, advanced, pytorch or null", t.profiler)
    need(t.lr > 0, "train.lr", "must be > 0", t.lr)
    need(t.probe_c > 0, "train.probe_c", "must be > 0", t.probe_c)
    need(0.0 <= t.calibration_split < 0.5, "train.calibration_split", "must be in [0, 0.5)", t.calibration_split)
    need(t.calibration_min_clips >= 1, "train.calibration_min_clips", "must be >= 1", t.calibration_min_clips)
    need(0.0 <= t.false_rejection < 1.0, "train.false_rejection", "must be in [0, 1)", t.false_rejection)
    need(all(c > 0 for c in t.probe_c_grid), "train.probe_c_grid", "must hold values > 0", t.probe_c_grid)
    need(t.mode != "probe" or bool(cfg.model.pretrained), "model.pretrained",
         "is required when train.mode is 'probe' (a probe of a random network measures nothing)", cfg.model.pretrained)
    from esclab.weights import frontend_mismatch  # the weights' contract: their front end, in one place

    mismatch = frontend_mismatch(cfg.model.pretrained, a.sample_rate, dataclasses.asdict(f))
    if mismatch:
        raise ConfigError(mismatch)
    need(t.head_init != "probe" or bool(cfg.model.pretrained), "model.pretrained",
         "is required when train.head_init is 'probe' (a probe of a random network measures nothing)",
         cfg.model.pretrained)
    frozen = cfg.model.kwargs.get("frozen_blocks", 0) or 0
    need(not (frozen and f.standardize), "features.standardize",
         "must be false with model.kwargs.frozen_blocks (the frozen layers' outputs are cached for all folds; "
         "per-fold statistics would change them)", f.standardize)
    aug = cfg.augment
    level = sorted(set(aug.spectrogram) & {"level_gain"}) + (["level_mix_p"] if aug.level_mix_p > 0 else [])
    need(not level or f.kind == "kaldi_logmel", "augment", f"{level} need features.kind kaldi_logmel (log-mels "
         f"that keep the level)", f.kind)
    need(not (level and frozen and t.cache_frozen), "train.cache_frozen",
         f"must be false for {level}: they act on log-mels, not on cached outputs of frozen layers", t.cache_frozen)
    need(0 <= aug.level_mix_p <= 1 and aug.level_mix_alpha > 0, "augment.level_mix_p",
         "must be in [0, 1] with level_mix_alpha > 0", (aug.level_mix_p, aug.level_mix_alpha))
    need(t.weight_decay >= 0, "train.weight_decay", "must be >= 0", t.weight_decay)
    need(0 < t.plateau_factor < 1, "train.plateau_factor", "must be in (0, 1)", t.plateau_factor)
    need(t.early_stopping_patience >= 1, "train.early_stopping_patience", "must be >= 1",
         t.early_stopping_patience)
    need(0 <= t.label_smoothing < 1, "train.label_smoothing", "must be in [0, 1)", t.label_smoothing)
    need(0 <= t.distill_weight < 1, "train.distill_weight", "must be in [0, 1)", t.distill_weight)
    need(t.distill_temperature > 0, "train.distill_temperature", "must be > 0", t.distill_temperature)
    need(t.distill_weight == 0 or bool(cfg.model.pretrained), "model.pretrained",
         "is required when train.distill_weight > 0 (the teacher is the probe of the pretrained network)",
         cfg.model.pretrained)
    need(t.distill_weight == 0 or t.mode == "fit", "train.distill_weight", "needs train.mode 'fit'", t.distill_weight)
    need(0 < t.ema_decay < 1, "train.ema_decay", "must be in (0, 1)", t.ema_decay)
    need(t.weight_averaging == "none" or 0 <= t.average_from_epoch < t.max_epochs, "train.average_from_epoch",
         f"must be in [0, train.max_epochs = {t.max_epochs}) (the average needs an epoch to start from)",
         t.average_from_epoch)
    need(t.weight_averaging == "none" or t.mode == "fit", "train.weight_averaging", "needs train.mode 'fit'",
         t.weight_averaging)
    need(0 <= t.wise_alpha <= 1, "train.wise_alpha", "must be in [0, 1] (1: the trained weights)", t.wise_alpha)
    need(t.wise_alpha == 1 or t.head_init == "probe", "train.wise_alpha",
         "< 1 needs train.head_init 'probe' (it moves the network back toward where fitting started: a random "
         "head would be no model)", t.wise_alpha)
    need(t.num_threads is None or t.num_threads >= 1, "train.num_threads", "must be >= 1 or null", t.num_threads)
    need(cfg.augment.mixup_alpha >= 0, "augment.mixup_alpha", "must be >= 0", cfg.augment.mixup_alpha)
    need(cfg.augment.bank_size >= 0, "augment.bank_size", "must be >= 0", cfg.augment.bank_size)
    need(not cfg.augment.waveform or cfg.augment.bank_size >= 1, "augment.bank_size",
         "must be >= 1 when augment.waveform has transforms (they run through a precomputed bank of variants)",
         cfg.augment.bank_size)
    need(cfg.augment.tta_views >= 1 and (f.frames is None or cfg.augment.tta_views <= f.frames),
         "augment.tta_views", "must be in [1, features.frames]", cfg.augment.tta_views)
    need(0 <= cfg.augment.mixup_p <= 1, "augment.mixup_p", "must be in [0, 1]", cfg.augment.mixup_p)
    for stage in t.progressive:
        need(set(stage) == {"fraction", "epochs"} and 0 < stage["fraction"] <= 1 and stage["epochs"] >= 1,
             "train.progressive", "must be a list of {fraction: (0,1], epochs: >=1}", stage)
    return cfg


def packaged_configs() -> Path:
    """The presets shipped inside the package (``esclab/configs``: ``experiment/``, ``features/``, ...); a
    checkout's ``configs/`` is a link to them."""
    return Path(str(resources.files("esclab").joinpath("configs")))


def find_experiment(name_or_path: str | Path) -> Path:
    """An experiment file: ``name_or_path`` itself when it is a file, else the packaged experiment of that name.

    Raises:
        ConfigError: neither exists; the message lists the packaged experiments.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = packaged_configs() / "experiment" / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and packaged.is_file():
        return packaged
    names = sorted(p.stem for p in (packaged_configs() / "experiment").glob("*.yaml"))
    raise ConfigError(f"config file not found: {path} (packaged experiments, usable by name: {', '.join(names)})")


def _group_layer(configs_root: Path, group: str, name: str) -> DictConfig:
    """``{group: <configs/group/name.yaml>}``, plus the file's ``_global_`` keys at the top level (a features
    preset states the sample rate it is built for). A model without a file of its own is ``{name: NAME}``
    (its family's defaults; ``create_model`` refuses an unknown name)."""
    path = configs_root / group / f"{name}.yaml"
    if not path.is_file():
        if group == "model":
            return OmegaConf.create({"model": {"name": name}})
        options = sorted(p.stem for p in (configs_root / group).glob("*.yaml"))
        raise ConfigError(f"defaults.{group}: no file {path} (available: {', '.join(options) or 'none'})")
    content = OmegaConf.load(path)
    extra = content.pop("_global_", None) or OmegaConf.create({})
    return OmegaConf.merge(extra, OmegaConf.create({group: content}))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                configs_root: str | Path | None = None) -> ExperimentConfig:
    """Compose an experiment: defaults, group files, the experiment file, then ``key=value`` overrides.

    Args:
        path: experiment YAML, or the name of a packaged one (``"mn04_probe"``; ``None``: the dataclass
            defaults only).
        overrides: dotted overrides such as ``["train.max_epochs=5", "data.folds=[1,2]"]``;
            ``key={}`` empties a mapping (``augment.spectrogram={}``) instead of merging nothing into it.
        configs_root: folder holding the group folders; defaults to the experiment
            file's grandparent (``configs/experiment/x.yaml`` -> ``configs/``), and without an experiment
            file to the packaged presets (:func:`packaged_configs`), from any working directory.

    Example:
        >>> cfg = load_config("configs/experiment/paper_cnn.yaml", ["train.max_epochs=3", "augment=strong"])
        >>> cfg.model.name, cfg.train.max_epochs, cfg.features.input_size, cfg.augment.bank_size
        ('paper_cnn', 3, (128, 215), 8)
        >>> load_config(None, ["train.lr=-1"])
        Traceback (most recent call last):
        ...
        esclab.config.ConfigError: train.lr must be > 0, got -1.0
    """
    schema = OmegaConf.structured(ExperimentConfig)
    overrides = list(overrides or [])
    # ``GROUP=NAME`` (no dot) picks configs/GROUP/NAME.yaml, like the experiment's ``defaults``.
    choices = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in CONFIG_GROUPS)
    dotted = [o for o in overrides if o.split("=", 1)[0] not in CONFIG_GROUPS]
    emptied = [o.split("=", 1)[0] for o in dotted if o.split("=", 1)[1:] == ["{}"]]
    dotted = [o for o in dotted if o.split("=", 1)[0] not in emptied]
    layers, defaults = [], {}
    root = Path(configs_root) if configs_root else packaged_configs()
    if path is not None:
        defaults, own_layers, experiment_root = _read_experiment(find_experiment(path))
        root = Path(configs_root) if configs_root else experiment_root
        group_layers = []
        for group, name in {**defaults, **choices}.items():
            if group not in CONFIG_GROUPS:
                raise ConfigError(f"defaults: unknown group {group!r} (groups: {', '.join(CONFIG_GROUPS)})")
            group_layers.append(_group_layer(root, group, name))
        # A group chosen on the command line replaces the experiment's own settings for that group.
        for group in choices:
            for own in own_layers:
                own.pop(group, None)
        layers += [*group_layers, *own_layers]
    elif choices:
        layers += [_group_layer(root, g, n) for g, n in choices.items()]
    try:
        if dotted:
            layers.append(OmegaConf.from_dotlist(dotted))
        merged = OmegaConf.merge(schema, *layers)
        for key in emptied:
            OmegaConf.update(merged, key, {}, merge=False)
        cfg: ExperimentConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"invalid configuration: {err}".splitlines()[0] + _where(err)) from err
    return validate(cfg)


def _read_experiment(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, str], list[DictConfig], Path]:
    """An experiment file as ``(defaults, own layers, configs root)``, following ``extends: NAME``.

    ``extends`` names the experiment this one starts from (a file beside it, else a packaged one): its
    ``defaults`` are taken and overridden group by group, and its own keys come first, then this file's. The
    configs root is the one of the first experiment in the chain.

    Raises:
        ConfigError: a file that does not parse, an unknown parent, or a chain that comes back to itself.
    """
    if path.resolve() in chain:
        names = " -> ".join(p.stem for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: experiments extend each other in a circle ({names})")
    try:
        own = OmegaConf.load(path)
    except Exception as err:  # yaml errors come in many types
        raise ConfigError(f"cannot parse {path}: {err}") from err
    defaults = OmegaConf.to_container(own.pop("defaults", None) or OmegaConf.create({}))
    parent = own.pop("extends", None)
    if parent is None:
        return defaults, [own], path.resolve().parent.parent
    beside = path.parent / f"{parent}.yaml"
    try:
        parent_path = beside if beside.is_file() else find_experiment(str(parent))
    except ConfigError as err:
        raise ConfigError(f"{path}: extends {parent!r}, which is neither {beside} nor a packaged experiment") from err
    parent_defaults, parent_layers, root = _read_experiment(parent_path, (*chain, path.resolve()))
    return {**parent_defaults, **defaults}, [*parent_layers, own], root


def _where(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None)
    return f" (key: {key})" if key else ""


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> ExperimentConfig:
    merged = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), OmegaConf.create(data))
    return validate(OmegaConf.to_object(merged))


def load_config_file(path: str | Path) -> ExperimentConfig:
    """A resolved config saved by :func:`save_config` (no ``defaults`` composition)."""
    return from_dict(OmegaConf.to_container(OmegaConf.load(path)))


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    atomic_write(path, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
