"""Pretrained weights by name, the way torch.hub and timm find them: ``resolve_weights("efficientat:mn04_as")``.

A name in :data:`KNOWN_WEIGHTS` maps to a release file (name, URL, width multiplier and,
where one is published, its sha256). :func:`resolve_weights` looks for that file, by
name, in these folders, first hit wins (:func:`search_dirs`):

1. ``$ESCLAB_WEIGHTS``, when set: a user's own folder of weight files;
2. ``<repository root>/../shared/pretrained``, when it exists: the copies that ship beside
   a checkout of this repository for offline machines;
3. the user cache, ``torch.hub.get_dir() / "esclab"``, i.e. ``$TORCH_HOME/hub/esclab``
   (``~/.cache/torch/hub/esclab`` by default): where downloads go, beside torch.hub's
   own ``checkpoints`` folder.

Not found anywhere, the file is downloaded into the user cache with
``torch.hub.download_url_to_file``.

Integrity:

* a file with a published sha256 must match it, wherever it was found;
* a file without one is trusted on first use: its sha256 is logged at WARNING (shown on
  stderr unless logging is silenced) and recorded in ``esclab-sha256.json`` in the user
  cache, keyed by release file name (one hash per release file wherever its copies live,
  since every copy of a release is the same bytes); later loads of any copy with another
  hash are refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esclab.errors import EsclabError
from esclab.fsutil import atomic_write

log = logging.getLogger(__name__)

ENV_VAR = "ESCLAB_WEIGHTS"
RECORD_NAME = "esclab-sha256.json"
_EFFICIENTAT_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"


class WeightsError(EsclabError, RuntimeError):
    """Pretrained weights that cannot be found, fetched, trusted or loaded; the message is one line."""


#: The front end EfficientAT's AudioSet MobileNets were trained with (``models/preprocess.py``
#: ``AugmentMelSTFT`` in eval mode): esclab's ``kaldi_logmel`` at 32 kHz, checked against
#: ``mn04_as_golden.npz`` (tests/unit/test_efficientat_golden.py).
EFFICIENTAT_SAMPLE_RATE = 32000
EFFICIENTAT_FRONTEND: dict[str, Any] = {"kind": "kaldi_logmel", "n_mels": 128, "n_fft": 1024, "win_length": 800,
                                        "hop_length": 320, "fmin": 0.0, "fmax": 15000.0}


@dataclass(frozen=True)
class WeightsSpec:
    """One known release file and the contract its weights carry (like timm's ``pretrained_cfg``).

    Everything that reads pretrained weights by name (the feature config check, the tagger, the probe)
    takes the architecture, sample rate, front end and label set from here, in one place.

    Attributes:
        name: the name users pass, e.g. ``"efficientat:mn04_as"``.
        filename: the release file's name, looked up as is in every search folder.
        url: where the release file downloads from.
        width_mult: the MobileNetV3 width multiplier the weights were trained with.
        sha256: the published sha256 of the file, or ``None`` where none is published
            (then trusted on first use).
        arch: the registered model the weights fill (``create_model(arch, ...)``).
        sample_rate: the audio rate the weights were trained on, in Hz.
        frontend: the front-end settings they were trained on (``FeatureConfig`` fields; ``frames``,
            ``top_db`` and ``standardize`` are free).
        labels: the label set of the pretrained head (``audioset``: 527 classes).
        num_classes: its size.
        licence: the weights' licence.
    """

    name: str
    filename: str
    url: str
    width_mult: float
    sha256: str | None = None
    arch: str = ""
    sample_rate: int = EFFICIENTAT_SAMPLE_RATE
    frontend: dict[str, Any] = field(default_factory=lambda: dict(EFFICIENTAT_FRONTEND))
    labels: str = "audioset"
    num_classes: int = 527
    licence: str = "MIT (EfficientAT, Copyright (c) 2022 Florian Schmid)"


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file found (or downloaded) and checked.

    Attributes:
        path: absolute path of the file.
        sha256: its sha256, as computed.
        spec: the :class:`WeightsSpec` it was resolved from.
    """

    path: Path
    sha256: str
    spec: WeightsSpec


def _efficientat(width: str, filename: str, width_mult: float, sha256: str | None = None) -> WeightsSpec:
    return WeightsSpec(f"efficientat:{width}", filename, _EFFICIENTAT_URL + filename, width_mult, sha256,
                       arch=f"mn{round(width_mult * 10):02d}")


#: EfficientAT's AudioSet MobileNets (``pretrained_models`` in EfficientAT's ``models/mn/model.py``).
KNOWN_WEIGHTS: dict[str, WeightsSpec] = {
    spec.name: spec
    for spec in (
        _efficientat("mn01_as", "mn01_as_mAP_298.pt", 0.1),
        _efficientat("mn02_as", "mn02_as_mAP_378.pt", 0.2),
        _efficientat(
            "mn04_as",
            "mn04_as_mAP_432.pt",
            0.4,
            "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
        ),
        _efficientat("mn05_as", "mn05_as_mAP_443.pt", 0.5),
        _efficientat("mn10_as", "mn10_as_mAP_471.pt", 1.0),
        _efficientat("mn20_as", "mn20_as_mAP_478.pt", 2.0),
        _efficientat("mn30_as", "mn30_as_mAP_482.pt", 3.0),
        _efficientat("mn40_as", "mn40_as_mAP_484.pt", 4.0),
        _efficientat("mn40_as_ext", "mn40_as_ext_mAP_487.pt", 4.0),
    )
}


def frontend_mismatch(name: str | None, sample_rate: int, features: dict[str, Any]) -> str | None:
    """Why a run's front end differs from the one the known weights ``name`` were trained with, or ``None``.

    ``features`` is the run's feature config as a mapping; names that are not in :data:`KNOWN_WEIGHTS`
    (local files, hub names) carry no contract and always pass.
    """
    spec = KNOWN_WEIGHTS.get(name or "")
    if spec is None:
        return None
    wanted = {"audio.sample_rate": spec.sample_rate, **{f"features.{k}": v for k, v in spec.frontend.items()}}
    have = {"audio.sample_rate": sample_rate, **{f"features.{k}": features.get(k) for k in spec.frontend}}
    differ = [k for k in wanted if have[k] != wanted[k]]
    if not differ:
        return None
    return (f"model.pretrained {name} was trained on {_describe(wanted)}, but this run's front end has "
            f"{_describe({k: have[k] for k in differ})}; set the weights' front end (e.g. --set "
            f"features=kaldi_logmel_32k audio.sample_rate={spec.sample_rate}) or use other weights")


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def cache_dir() -> Path:
    """The user cache for downloaded weights: ``torch.hub.get_dir() / "esclab"`` (honours ``$TORCH_HOME``)."""
    import torch.hub  # only where a weight file is looked for: the contract above needs no torch

    return Path(torch.hub.get_dir()) / "esclab"


def shared_dir() -> Path:
    """``<repository root>/../shared/pretrained``: the offline copies beside a checkout (may not exist)."""
    repository_root = Path(__file__).resolve().parents[2]  # src/esclab/weights.py -> the checkout
    return repository_root.parent / "shared" / "pretrained"


def search_dirs() -> list[Path]:
    """The folders :func:`resolve_weights` looks in, in order.

    ``$ESCLAB_WEIGHTS`` (when set) and the user cache are listed whether or not they
    exist; the shared folder only when it exists (it does beside a checkout, not in an
    installed package).
    """
    dirs = [Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR) else []
    if shared_dir().is_dir():
        dirs.append(shared_dir())
    return [d.resolve() for d in (*dirs, cache_dir())]  # resolved: a symlinked ../shared names its target


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in a stream."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def resolve_weights(name: str, download: bool = True) -> ResolvedWeights:
    """Find, fetch if need be, and check the weight file called ``name``.

    Args:
        name: a key of :data:`KNOWN_WEIGHTS`, e.g. ``"efficientat:mn04_as"``.
        download: whether a file found in no search folder may be downloaded into the
            user cache.

    Returns:
        The file's path and sha256, with its spec.

    Raises:
        WeightsError: an unknown name; a file found nowhere that could not (or may not) be
            downloaded; a file whose sha256 differs from the published or recorded one.
    """
    spec = KNOWN_WEIGHTS.get(name)
    if spec is None:
        raise WeightsError(f"unknown pretrained weights {name!r}; known: {', '.join(KNOWN_WEIGHTS)}")
    path = _find(spec.filename) or _download(spec, download)
    digest = sha256_file(path)
    if spec.sha256 is not None:
        if digest != spec.sha256:
            raise WeightsError(
                f"{name}: {path} is corrupt or changed: sha256 {digest}, expected {spec.sha256}; "
                f"delete it to let it download again, or put the right file there"
            )
    else:
        _trust_on_first_use(spec, path, digest)
    return ResolvedWeights(path=path.resolve(), sha256=digest, spec=spec)


def _find(filename: str) -> Path | None:
    return next((d / filename for d in search_dirs() if (d / filename).is_file()), None)


def _download(spec: WeightsSpec, allowed: bool) -> Path:
    where = f"put the file in one of those folders or set {ENV_VAR}"
    if not allowed:
        raise WeightsError(
            f"{spec.name}: {spec.filename} not found in {_describe_dirs()} (download=False): {where}"
        )
    import torch.hub

    dst = cache_dir() / spec.filename
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(spec.url, str(dst), hash_prefix=spec.sha256)
    except Exception as err:  # URLError, HTTPError, OSError and torch.hub's hash RuntimeError alike
        raise WeightsError(
            f"{spec.name}: {spec.filename} not found in {_describe_dirs()} and could not be downloaded "
            f"from {spec.url} ({_one_line(err)}; offline?): {where}"
        ) from err
    return dst


def _describe_dirs() -> str:
    dirs = [str(d) for d in search_dirs()]
    if not os.environ.get(ENV_VAR):
        dirs.insert(0, f"${ENV_VAR} (unset)")
    return ", ".join(dirs)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()).rstrip(".") or type(err).__name__


def _trust_on_first_use(spec: WeightsSpec, path: Path, digest: str) -> None:
    """Check ``digest`` against the one recorded for ``spec.filename``, recording it if there is none."""
    record_path = cache_dir() / RECORD_NAME
    record = _read_record(record_path)
    known = record.get(spec.filename)
    if known is None:
        message = (
            f"{spec.name}: first use of {path}, sha256 {digest} (no published checksum; "
            f"later loads must match it, recorded in {record_path})"
        )
        log.warning(message)  # printed to stderr by the CLI's handler, or logging's last resort
        _write_record(record_path, {**record, spec.filename: digest})
    elif known != digest:
        raise WeightsError(
            f"{spec.name}: {path} has sha256 {digest}, but {known} was recorded on first use in "
            f"{record_path}: the file changed; put the original back, or, if the new file is "
            f"right, delete its entry {spec.filename!r} from that record"
        )


def _read_record(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read the sha256 record {path}: {_one_line(err)}; delete it") from err
    if not isinstance(record, dict):
        raise WeightsError(f"the sha256 record {path} is not a JSON object; delete it")
    return record


def _write_record(path: Path, record: dict[str, str]) -> None:
    """Write ``record`` atomically; an unwritable cache only costs the check on later loads."""
    try:
        atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        log.warning("could not record sha256 in %s: %s", path, _one_line(err))
