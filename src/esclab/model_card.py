"""The model card of a run: what the model is, what it learnt from and under which licences, how well it does
and where it fails, how far its scores can be trusted, what input it expects and what it is not for
(after Mitchell et al., "Model Cards for Model Reporting", FAT* 2019).

:func:`write_model_card` writes ``RUN/MODEL_CARD.md`` from the numbers training wrote (``summary.json``,
``config.yaml``, ``per_class_report.csv``, ``confusion_matrix.csv``, ``env.json``); ``run_cv`` and
``ensemble_runs`` call it once the summary is written. Each fold's bundle carries the same facts for its fold
(:func:`fold_card_facts`, ``Bundle.card``), so a bundle passed around alone still says where it came from.
:func:`render_model_card` turns either kind of facts into Markdown: sections whose facts a bundle does not
carry (worst classes, confused pairs) say so.

The facts are plain JSON types, so a bundle holding them still loads with ``weights_only=True``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from esclab.fsutil import atomic_write
from esclab.runs import FOLD_DIR, RunDir
from esclab.weights import KNOWN_WEIGHTS

if TYPE_CHECKING:
    import pandas as pd

#: Rows of the per-class report shown as the worst classes, and off-diagonal cells as the most confused pairs.
WORST_CLASSES = 5
CONFUSED_PAIRS = 5
_NON_COMMERCIAL = "CC BY-NC 3.0 (Karol J. Piczak): non-commercial use only; models trained on it inherit the restriction"
#: Each dataset esclab knows: what it is and its licence.
DATASETS: dict[str, dict[str, Any]] = {
    "esc50": {"description": "ESC-50 (Piczak, 2015): 2,000 five-second clips of 50 environmental sound classes",
              "licence": _NON_COMMERCIAL, "non_commercial": True},
    "esc10": {"description": "ESC-10: the 10-class subset of ESC-50 (Piczak, 2015)",
              "licence": _NON_COMMERCIAL, "non_commercial": True},
}
FOLDER_LICENCE = "as stated by its owner (not known to esclab)"
UNKNOWN_WEIGHTS_LICENCE = "not known to esclab: see where the weights came from"
INTENDED_USE = ("classifying single-label clips (one sound per clip) of the classes listed below, recorded like "
                "the training data")
NOT_FOR = (
    "overlapping events: a single-label model names one class per clip and cannot report two sounds at once",
    "safety-critical decisions (alarms, health, surveillance of people) without a person checking",
    "audio outside the training distribution (other recording conditions, band or clip length than stated below)",
    "sounds of classes outside its label set: it answers one of its own classes, and `unknown` only through the "
    "rejection rule below",
)


def data_facts(data: Mapping[str, Any], class_names: Sequence[str], n_clips: int | None = None) -> dict[str, Any]:
    """The training data: which dataset, its licence (ESC-50 / ESC-10: non-commercial), its classes and size."""
    name = data.get("dataset")
    if name in DATASETS:
        known = DATASETS[name]
    elif name == "folder":
        known = {"description": f"a folder of labelled audio ({Path(str(data.get('csv') or 'a CSV')).name})",
                 "licence": FOLDER_LICENCE, "non_commercial": False}
    else:
        known = {"description": "not recorded", "licence": "not recorded: check the training data's own licence",
                 "non_commercial": False}
    return {"dataset": name, **known, "classes": list(class_names), "n_clips": n_clips,
            "folds": [int(k) for k in data.get("folds", [])],
            "exclude_folds": [int(k) for k in data.get("exclude_folds") or []]}


def weights_facts(name: str | None, pretrained: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Pretrained weights: name, licence, sha256, where they came from, and how much of them was loaded.

    ``name`` is the config's ``model.pretrained``; ``pretrained`` a fold's ``metrics.json`` record of the load
    (``{name, sha256, loaded, skipped, missing}``), which wins where both are given. ``None``: trained from scratch.
    """
    pretrained = dict(pretrained or {})
    name = pretrained.get("name") or name
    if not name:
        return None
    spec = KNOWN_WEIGHTS.get(name)
    return {"name": name, "licence": spec.licence if spec else UNKNOWN_WEIGHTS_LICENCE,
            "source": spec.url if spec else f"{name} (a local file, folder or hub name)",
            "sha256": pretrained.get("sha256") or (spec.sha256 if spec else None),
            "loaded": pretrained.get("loaded"), "skipped": len(pretrained.get("skipped") or {}),
            "missing": len(pretrained.get("missing") or [])}


def input_facts(config: Mapping[str, Any], fold_metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The input the model expects: rate, band (the training data's rate, when lower), clip length, front end."""
    audio, features = config.get("audio", {}), config.get("features", {})
    return {"sample_rate": audio.get("sample_rate"), "band_rate": fold_metrics.get("band_rate", audio.get("band_rate")),
            "data_sample_rate": fold_metrics.get("data_sample_rate"), "clip_seconds": audio.get("duration"),
            "frontend": features.get("kind"), "n_mels": features.get("n_mels"), "frames": features.get("frames"),
            "fmin": features.get("fmin"), "fmax": features.get("fmax")}


def _model_facts(config: Mapping[str, Any], fold_metrics: Mapping[str, Any]) -> dict[str, Any]:
    model = config.get("model", {})
    members = [{"name": m.get("name"), "run": Path(str(m.get("run", ""))).name, "mode": m.get("mode")}
               for m in (model.get("kwargs") or {}).get("members", [])]
    return {"name": model.get("name"), "training": (config.get("train") or {}).get("mode"),
            "parameters": fold_metrics.get("parameters"), "members": members}


def _common(config: Mapping[str, Any], fold_metrics: Mapping[str, Any], class_names: Sequence[str],
            n_clips: int | None, weights: list[dict[str, Any]] | None) -> dict[str, Any]:
    if weights is None:
        one = weights_facts((config.get("model") or {}).get("pretrained"), fold_metrics.get("pretrained"))
        weights = [] if one is None else [one]
    return {"name": config.get("name"), "model": _model_facts(config, fold_metrics), "weights": weights,
            "data": data_facts(config.get("data", {}), class_names, n_clips), "input": input_facts(config, fold_metrics),
            "intended_use": INTENDED_USE, "not_for": list(NOT_FOR)}


def fold_card_facts(config: Mapping[str, Any], fold_metrics: Mapping[str, Any], class_names: Sequence[str],
                    weights: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What one fold's bundle carries (``Bundle.card``): the run's facts for this fold's model.

    Args:
        config: the run's resolved config as a mapping (``to_dict(cfg)``).
        fold_metrics: the fold's ``metrics.json`` record.
        class_names: the model's classes.
        weights: the pretrained weights' facts (default: from ``config`` and ``fold_metrics``).
    """
    return {**_common(config, fold_metrics, class_names, None, weights), "scope": "fold",
            "metrics": {"fold": fold_metrics.get("fold"), "accuracy": fold_metrics.get("accuracy"),
                        "macro_f1": fold_metrics.get("macro_f1")},
            "calibration": fold_metrics.get("calibration") or None}


def model_card_facts(config: Mapping[str, Any], summary: Mapping[str, Any], per_class: pd.DataFrame | None = None,
                     confusion: pd.DataFrame | None = None, env: Mapping[str, Any] | None = None,
                     weights: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run's card facts from what training wrote (no file is read here).

    Args:
        config: ``config.yaml`` as a mapping.
        summary: ``summary.json``.
        per_class: ``per_class_report.csv`` (``class, precision, recall, f1, support``): its lowest-F1 rows.
        confusion: ``confusion_matrix.csv`` (index and columns the class names): its largest off-diagonal cells.
        env: ``env.json`` (commit, versions).
        weights: the pretrained weights' facts (default: from ``config`` and the first fold's record).
    """
    folds = {str(k): v for k, v in summary.get("folds", {}).items()}
    first = folds[min(folds, key=int)] if folds else {}
    env = env or {}
    sessions = env.get("sessions") or [{}]
    return {
        **_common(config, first, summary.get("class_names", []), summary.get("n_clips"), weights),
        "scope": "run",
        "metrics": {key: summary.get(key) for key in ("accuracy_mean", "accuracy_std", "macro_f1_mean",
                                                      "macro_f1_std", "pooled_accuracy", "truncated_folds")}
                   | {"folds": {k: {"accuracy": v.get("accuracy"), "macro_f1": v.get("macro_f1")}
                                for k, v in sorted(folds.items(), key=lambda kv: int(kv[0]))}},
        "worst_classes": worst_classes(per_class),
        "confused_pairs": confused_pairs(confusion),
        "calibration": summary.get("calibration") or None,
        "provenance": {"commit": sessions[-1].get("commit"), "dirty": sessions[-1].get("dirty"),
                       "esclab_version": (env.get("versions") or {}).get("esclab")},
    }


def worst_classes(per_class: pd.DataFrame | None, k: int = WORST_CLASSES) -> list[dict[str, Any]]:
    """The ``k`` lowest-F1 rows of a per-class report (ties: the listed order), as records."""
    if per_class is None or per_class.empty:
        return []
    rows = per_class.sort_values("f1", kind="stable").head(k)
    return [{"class": str(r["class"]), "precision": float(r["precision"]), "recall": float(r["recall"]),
             "f1": float(r["f1"]), "support": int(r["support"])} for _, r in rows.iterrows()]


def confused_pairs(confusion: pd.DataFrame | None, k: int = CONFUSED_PAIRS) -> list[dict[str, Any]]:
    """The ``k`` largest off-diagonal cells of a confusion matrix (rows true, columns predicted), as records."""
    if confusion is None or confusion.empty:
        return []
    from esclab.metrics import top_confusions

    return top_confusions(confusion.to_numpy(), [str(c) for c in confusion.columns], k).to_dict(orient="records")


def read_card_facts(run_dir: str | Path) -> dict[str, Any]:
    """:func:`model_card_facts` of a run folder (an ensemble's weights: its members' runs, where still readable).

    Raises:
        FileNotFoundError: no ``summary.json`` (the run is not finished).
    """
    import pandas as pd

    run = RunDir(Path(run_dir))
    summary = json.loads(run.summary.read_text())
    config = _read_yaml(run.config)
    members = (config.get("model", {}).get("kwargs") or {}).get("members")
    return model_card_facts(config, summary,
                            pd.read_csv(run.per_class) if run.per_class.is_file() else None,
                            pd.read_csv(run.confusion_csv, index_col=0) if run.confusion_csv.is_file() else None,
                            json.loads(run.env.read_text()) if run.env.is_file() else {},
                            members_weights(members) if members else None)


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def members_weights(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each ensemble member's pretrained weights, from its run folder's config and first fold."""
    out = []
    for member in members:
        run = RunDir(Path(str(member.get("run", ""))))
        if not run.summary.is_file():
            out.append({"member": member.get("name"), "name": "not known", "licence": "not known: the member's run "
                        f"{run.path.name} was not readable when this card was written", "source": run.path.name,
                        "sha256": None})
            continue
        folds = json.loads(run.summary.read_text()).get("folds", {})
        first = folds[min(folds, key=int)] if folds else {}
        facts = weights_facts((_read_yaml(run.config).get("model") or {}).get("pretrained"), first.get("pretrained"))
        if facts is not None:
            out.append({"member": member.get("name"), **facts})
    return out


def write_model_card(run_dir: str | Path) -> Path:
    """Write ``RUN/MODEL_CARD.md`` (atomically) from the run folder's numbers; returns its path."""
    run = RunDir(Path(run_dir))
    return atomic_write(run.model_card, render_model_card(read_card_facts(run.path)))


def bundle_model_card(checkpoint: str | Path | None, card: Mapping[str, Any]) -> str | None:
    """The card to show beside a bundle, as Markdown.

    A run's ``fold_K/model.ckpt`` gets its run's ``MODEL_CARD.md`` (rendered from the run's numbers for a run
    written before cards), headed by a line naming the fold served; any other bundle the card rendered from its
    own facts (``Bundle.card``). ``None``: a bundle outside a finished run, written before bundles carried a card.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        run = RunDir(path.parent.parent)
        if FOLD_DIR.fullmatch(path.parent.name) and run.summary.is_file():
            text = (run.model_card.read_text(encoding="utf-8") if run.model_card.is_file()
                    else render_model_card(read_card_facts(run.path)))
            return f"> Served: `{path.parent.name}/{path.name}` of this run.\n\n{text}"
    return render_model_card(card) if card else None


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def _or(value: Any, default: str = "not recorded") -> str:
    return default if value is None or value == "" else str(value)


def render_model_card(facts: Mapping[str, Any]) -> str:
    """Markdown of a run's (:func:`model_card_facts`) or a bundle's (:func:`fold_card_facts`) facts."""
    sections = [_header(facts), _model_section(facts), _use_section(facts), _data_section(facts),
                _metrics_section(facts), _calibration_section(facts), _input_section(facts)]
    return "\n\n".join(s.strip("\n") for s in sections) + "\n"


def _header(facts: Mapping[str, Any]) -> str:
    scope = ("one fold's model (from its bundle; the run folder's MODEL_CARD.md has the whole run)"
             if facts.get("scope") == "fold" else "a cross-validation run")
    lines = [f"# Model card: {_or(facts.get('name'), 'esclab model')}", "", f"Written by esclab for {scope}."]
    provenance = facts.get("provenance") or {}
    if provenance.get("commit"):
        dirty = " (uncommitted changes)" if provenance.get("dirty") else ""
        lines.append(f"Code: esclab {_or(provenance.get('esclab_version'))}, commit `{provenance['commit']}`{dirty}.")
    return "\n".join(lines)


def _model_section(facts: Mapping[str, Any]) -> str:
    model = facts.get("model") or {}
    lines = ["## Model and weights", "", f"- Model: `{_or(model.get('name'))}` (training: {_or(model.get('training'))}"
             + (f", {model['parameters']:,} parameters)" if model.get("parameters") else ")")]
    for member in model.get("members") or []:
        lines.append(f"  - member `{_or(member.get('name'))}` ({_or(member.get('mode'))}), run `{_or(member.get('run'))}`")
    weights = facts.get("weights") or []
    if not weights:
        lines.append("- Pretrained weights: none (trained from scratch on the data below)")
    for w in weights:
        who = f" (member `{w['member']}`)" if w.get("member") else ""
        lines.append(f"- Pretrained weights{who}: `{_or(w.get('name'))}`")
        lines += [f"  - {label}: {value}" for label, value in
                  (("licence", _or(w.get("licence"))), ("from", _or(w.get("source"))), ("sha256", f"`{_or(w.get('sha256'))}`"))]
        if w.get("loaded") is not None:
            lines.append(f"  - tensors loaded: {w['loaded']}, skipped: {w.get('skipped', 0)}, "
                         f"left at initialisation: {w.get('missing', 0)}")
    return "\n".join(lines)


def _data_section(facts: Mapping[str, Any]) -> str:
    data = facts.get("data") or {}
    classes = data.get("classes") or []
    lines = ["## Training data and its licence", "", f"- Data: {_or(data.get('description'))}",
             f"- Licence: {_or(data.get('licence'))}"]
    if data.get("non_commercial"):
        lines.append("- **Non-commercial only**: this model was trained on non-commercial data, so it inherits the "
                     "restriction; it may not be used commercially.")
    size = f"{data['n_clips']} clips, " if data.get("n_clips") else ""
    lines.append(f"- {size}{len(classes)} classes: {', '.join(f'`{c}`' for c in classes) or 'not recorded'}")
    if data.get("folds"):
        lines.append(f"- Cross-validation folds: {', '.join(str(k) for k in data['folds'])} (each tested by a model "
                     "trained on the others)")
    if data.get("exclude_folds"):
        lines.append(f"- Left out: fold(s) {', '.join(str(k) for k in data['exclude_folds'])} of the dataset, never "
                     "read by this run (inner cross-validation, `data.exclude_folds`)")
    return "\n".join(lines)


def _metrics_section(facts: Mapping[str, Any]) -> str:
    m = facts.get("metrics") or {}
    if facts.get("scope") == "fold":
        return "\n".join(["## Metrics", "", f"- This fold's model (fold {_or(m.get('fold'))}, tested on that fold): "
                          f"accuracy {_pct(m.get('accuracy'))}, macro-F1 {_pct(m.get('macro_f1'))}",
                          "- Worst classes and most confused pairs: not in a bundle; see the run's MODEL_CARD.md"])
    folds = m.get("folds") or {}
    lines = ["## Metrics", "",
             f"Over {len(folds)} test fold(s), mean ± sample standard deviation: accuracy {_pct(m.get('accuracy_mean'))}"
             f" ± {_pct(m.get('accuracy_std'))}, macro-F1 {_pct(m.get('macro_f1_mean'))} ± {_pct(m.get('macro_f1_std'))}"
             f" (pooled accuracy {_pct(m.get('pooled_accuracy'))}).", "",
             "| fold | accuracy | macro-F1 |", "|---|---|---|"]
    lines += [f"| {k} | {_pct(v.get('accuracy'))} | {_pct(v.get('macro_f1'))} |" for k, v in folds.items()]
    if m.get("truncated_folds"):
        lines += ["", f"Folds {m['truncated_folds']} were cut short by a time cap: their numbers understate a full run."]
    lines += ["", "### Worst classes (lowest F1, pooled over the folds)", ""]
    worst = facts.get("worst_classes") or []
    lines += (["| class | precision | recall | F1 | clips |", "|---|---|---|---|---|"]
              + [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |"
                 for r in worst]) if worst else ["not recorded"]
    lines += ["", "### Most confused pairs (true -> predicted, clips)", ""]
    pairs = facts.get("confused_pairs") or []
    lines += [f"- `{p['true']}` -> `{p['predicted']}`: {p['count']}" for p in pairs] or ["none: no clip was confused"]
    return "\n".join(lines)


def _calibration_section(facts: Mapping[str, Any]) -> str:
    c = facts.get("calibration")
    head = ["## Calibration and the rejection rule", ""]
    if not c:
        return "\n".join(head + [
            "Not calibrated: the scores are the model's raw softmax outputs, which may be over- or under-confident, "
            "and there is no rejection rule, so every clip is answered with one of the known classes "
            "(`--reject-below P` sets a threshold by hand)."])
    rule, threshold = c.get("reject_below"), "n/a"
    if isinstance(rule, Mapping):
        threshold = "its fold's threshold (" + ", ".join(f"fold {k}: {float(v):.3f}" for k, v in rule.items()) + ")"
    elif rule is not None:
        threshold = f"{float(rule):.3f}"
    temps = c.get("temperatures")
    temp = (f"{float(c['temperature']):.3f} (mean over folds; " + ", ".join(f"fold {k}: {float(v):.3f}"
                                                                        for k, v in temps.items()) + ")"
            if temps else f"{float(c.get('temperature', 1.0)):.3f}")
    source = c.get("source") or ", ".join(c.get("sources") or [])
    lines = head + [f"- Temperature scaling: T = {temp}, fitted on held-out data, not the test fold"
                    + (f": {source}" if source else "")]
    if c.get("ece_before") is not None:
        lines.append(f"- Expected calibration error (15 bins): {float(c['ece_before']):.3f} before, "
                     f"{float(c['ece_after']):.3f} after")
    lines.append(f"- Rejection rule: a clip whose best calibrated probability is below {threshold} is "
                 f"answered `unknown`; it turns away about {_pct(c.get('false_rejection'))} of held-out "
                 "clips of known classes")
    tested = c.get("test_rejected") is not None
    return "\n".join(lines + [f"- On the test folds it turned away {_pct(c.get('test_rejected'))} of the clips "
                              f"(all of known classes); accuracy on the rest: {_pct(c.get('accuracy_accepted'))}"
                              ] * tested)


def _input_section(facts: Mapping[str, Any]) -> str:
    i = facts.get("input") or {}
    band = (f"- Band: the training data was at {i['band_rate']} Hz, so inputs pass through that rate first "
            f"(content above {i['band_rate'] / 2:g} Hz is removed)" if i.get("band_rate") else
            "- Band: the full band of the sample rate")
    fmax = "" if i.get("fmax") is None else f", {float(i.get('fmin') or 0):g}-{float(i['fmax']):g} Hz"
    return "\n".join(["## Input it expects", "",
                      f"- Mono audio, resampled to {_or(i.get('sample_rate'))} Hz (any file rate and channel count "
                      "is converted)", band,
                      f"- Clip length: {_or(i.get('clip_seconds'))} s (shorter clips are padded with silence, "
                      "longer ones judged on their first clip or, with `--long`, in sliding windows)",
                      f"- Front end: `{_or(i.get('frontend'))}`, {_or(i.get('n_mels'))} mel bands{fmax}, "
                      f"{_or(i.get('frames'))} frames"])


def _use_section(facts: Mapping[str, Any]) -> str:
    lines = ["## Intended use", "", f"Meant for {facts.get('intended_use', INTENDED_USE)}.", "",
             "## What it is not meant for", ""]
    lines += [f"- {item}" for item in facts.get("not_for", NOT_FOR)]
    return "\n".join(lines)
