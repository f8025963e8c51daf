"""One way to load pretrained weights into any esclab model: ``load_pretrained(model, spec)``.

``spec`` is one of:

* a local weight file (``.pt``, ``.pth``, ``.bin``, ``.ckpt``, ``.safetensors``) holding a
  state dict, possibly nested under ``"state_dict"`` or ``"model"`` (Lightning checkpoints,
  esclab bundles, torchvision-style checkpoints);
* a local folder written by transformers' ``save_pretrained`` (models built on
  transformers, i.e. ``ast_*``);
* a hub name, ``hf:ORG/NAME`` (transformers models) or ``timm:NAME`` (timm weights), which
  needs internet or a filled local cache;
* a known release, ``efficientat:NAME`` (e.g. ``efficientat:mn04_as``), found in
  ``$ESCLAB_WEIGHTS``, the shared offline folder or the user cache, else downloaded, and
  checked by sha256 (:func:`esclab.weights.resolve_weights`).

Whatever the source, the tensors go through the same matching:

1. key prefixes are reconciled (``conv1.weight`` in a timm checkpoint lands on
   ``backbone.conv1.weight``; ``module.``/``model.`` wrappers are dropped);
2. a conv weight with 3 input channels loaded into a 1-channel conv is summed over its
   input channels, as timm does for ``in_chans=1`` (the summed filter on a spectrogram
   equals the RGB filter on that spectrogram repeated over three channels);
3. tensors whose shape still differs (a classification head for another label set) are
   skipped and reported, never forced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from esclab.weights import WeightsError, resolve_weights

log = logging.getLogger(__name__)

_HOW = (
    "Give a local weight file (.pt/.pth/.bin/.ckpt/.safetensors state dict), a transformers "
    "save_pretrained folder (ast_* models), a hub name 'hf:ORG/NAME' / 'timm:NAME' (needs internet), "
    "or a known release 'efficientat:NAME' (e.g. efficientat:mn04_as), "
    "e.g. `--set model.pretrained=/path/to/weights.pt`."
)


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, key by key (names after prefix matching)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    sha256: str | None = None

    def facts(self) -> dict[str, object]:
        """What a fold's ``metrics.json`` records: name, sha256, tensors loaded, skipped (why), left at init."""
        return {"name": self.source, "sha256": self.sha256, "loaded": len(self.loaded),
                "skipped": dict(self.skipped), "missing": list(self.missing)}

    def summary(self) -> str:
        """One paragraph: counts, then the skipped keys with their reasons."""
        lines = [
            f"pretrained {self.source}: loaded {len(self.loaded)} tensors "
            f"({len(self.adapted)} adapted), skipped {len(self.skipped)}, left at init {len(self.missing)}"
        ]
        lines += [f"  adapted {k}: {why}" for k, why in self.adapted.items()]
        lines += [f"  skipped {k}: {why}" for k, why in self.skipped.items()]
        return "\n".join(lines)


def load_pretrained(model: nn.Module, spec: str, partial: bool = False) -> LoadReport:
    """Load the weights named by ``spec`` into ``model`` in place (see the module docstring).

    A load that leaves a body tensor (one outside the model's head, :func:`is_head_key`) at its
    initialisation, or skips one for its shape, stops with :class:`PartialLoadError` unless ``partial``.

    Args:
        model: the freshly built model.
        spec: local file, local ``save_pretrained`` folder, ``hf:NAME`` or ``timm:NAME``.
        partial: accept a load that fills only part of the body (``model.pretrained_partial: true``).

    Returns:
        The :class:`LoadReport` (also logged at INFO).

    Raises:
        WeightsError: a local path that does not exist, an unreadable file, a hub name not reachable
            (offline), a source kind the model cannot take (a transformers folder for a non-transformers
            model), a checkpoint its family refuses (another width), or no tensor that fits the model.
        PartialLoadError: body tensors left at init or skipped, without ``partial``.
    """
    source = read_state_dict(model, spec)
    check = getattr(model, "check_pretrained", None)
    if check is not None:  # a family that can tell a checkpoint of another width refuses it here
        check(source, spec)
    report = LoadReport(source=spec, sha256=_fingerprint(spec))
    target = model.state_dict()
    to_load = {}
    for key, tensor in _align_prefixes(source, target.keys(), report).items():
        if key not in target:
            report.skipped[key] = "not in the model"
            continue
        want = target[key].shape
        if tensor.shape != want and _is_rgb_to_mono(tensor.shape, want):
            tensor = tensor.sum(dim=1, keepdim=True)
            report.adapted[key] = "3 input channels summed into 1"
        if tensor.shape != want:
            report.skipped[key] = f"shape {tuple(tensor.shape)} does not fit {tuple(want)}"
            continue
        to_load[key] = tensor
    if not to_load:
        raise WeightsError(
            f"no tensor in {spec!r} fits {type(model).__name__}: is it a checkpoint of this "
            f"architecture? First keys: {list(source)[:5]}"
        )
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in set(target) - set(to_load) if not k.endswith("num_batches_tracked"))
    body = [k for k in report.missing if not is_head_key(model, k)] + \
        [k for k in report.skipped if k in target and not is_head_key(model, k)]
    if body and not partial:
        raise PartialLoadError(
            f"pretrained {spec} leaves {len(body)} body tensors of {type(model).__name__} unfilled or skipped "
            f"({', '.join(body[:4])}{', ...' if len(body) > 4 else ''}): are they weights of this architecture? "
            f"Set model.pretrained_partial=true to train from such a partial load")
    model.load_state_dict(to_load, strict=False)
    log.info(report.summary())
    return report


class PartialLoadError(WeightsError):
    """Pretrained weights that leave part of the model's body at its initialisation."""


def is_head_key(model: nn.Module, key: str) -> bool:
    """Whether a state-dict key belongs to the model's classification head (``head_prefixes``)."""
    return key.startswith(tuple(getattr(model, "head_prefixes", ("head.", "classifier."))))


def _fingerprint(spec: str) -> str | None:
    """The sha256 of the weight file ``spec`` names (``None`` for hub names and folders)."""
    from esclab.weights import sha256_file

    if spec.startswith("efficientat:"):
        return resolve_weights(spec).sha256
    path = Path(spec).expanduser()
    return sha256_file(path) if path.is_file() else None


def read_state_dict(model: nn.Module, spec: str) -> dict[str, torch.Tensor]:
    """The tensors ``spec`` names, with the source's own key names (no matching yet)."""
    kind, _, name = spec.partition(":")
    if kind == "hf" and name:
        return _transformers_state_dict(model, name, spec)
    if kind == "timm" and name:
        return _fetch(spec, lambda: _timm_state_dict(name))
    if kind == "efficientat" and name:
        return _read_file(resolve_weights(spec).path)  # WeightsError (one line) propagates as is
    if kind == "imagenet" and name:
        from esclab.models.efficientnet_lite import imagenet_state_dict

        return imagenet_state_dict(name)
    path = Path(spec).expanduser()
    if not path.exists():
        raise WeightsError(f"pretrained weights not found: {spec!r}. {_HOW}")
    if path.is_dir():
        return _transformers_state_dict(model, str(path), spec)
    return _read_file(path)


def _read_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            payload = load_file(str(path))
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch and safetensors raise many types for a bad file
        raise WeightsError(f"cannot read weights from {path}: {str(err).rstrip('.')}. {_HOW}") from err
    while isinstance(payload, Mapping):
        nested = next(
            (payload[k] for k in ("state_dict", "model") if isinstance(payload.get(k), Mapping)), None
        )
        if nested is None:
            break
        payload = nested
    if not isinstance(payload, Mapping):
        raise WeightsError(f"{path} holds a {type(payload).__name__}, not a state dict. {_HOW}")
    return {k: v for k, v in payload.items() if isinstance(v, torch.Tensor)}


def _transformers_state_dict(model: nn.Module, name_or_path: str, spec: str) -> dict[str, torch.Tensor]:
    reader = getattr(model, "transformers_state_dict", None)
    if reader is None:
        raise WeightsError(
            f"{spec!r} is a transformers checkpoint, which only transformers-based models "
            f"(ast_*) load; {type(model).__name__} needs a weight file. {_HOW}"
        )
    return _fetch(spec, lambda: reader(name_or_path))


def _timm_state_dict(name: str) -> dict[str, torch.Tensor]:
    import timm

    return timm.create_model(name, pretrained=True).state_dict()


def _fetch(spec: str, load: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Run a hub or folder load, turning its many failure types into one clear error."""
    try:
        return load()
    except Exception as err:  # hub clients raise OSError, HTTP and offline-mode errors alike
        raise WeightsError(
            f"cannot load pretrained weights {spec!r}: {str(err).rstrip('.')}. A hub name needs "
            f"internet or a filled local cache (offline?): download the weights where there is "
            f"internet and pass the local copy. {_HOW}"
        ) from err


def _align_prefixes(
    source: Mapping[str, torch.Tensor], target_keys: Iterable[str], report: LoadReport
) -> dict[str, torch.Tensor]:
    """Rename ``source`` keys by the (strip, add) prefix pair landing most of them on ``target_keys``."""
    target = set(target_keys)

    def firsts(keys: Iterable[str]) -> list[str]:
        return [""] + sorted({k.split(".", 1)[0] + "." for k in keys if "." in k})

    def hits(pair: tuple[str, str]) -> int:
        strip, add = pair
        return sum(k.startswith(strip) and add + k[len(strip) :] in target for k in source)

    strip, add = max(((s, a) for s in firsts(source) for a in firsts(target)), key=hits)
    renamed = {}
    for key, tensor in source.items():
        if key.startswith(strip):
            renamed[add + key[len(strip) :]] = tensor
        else:
            report.skipped[key] = f"outside the matched prefix {strip!r}"
    return renamed


def _is_rgb_to_mono(have: torch.Size, want: torch.Size) -> bool:
    same_rest = have[:1] == want[:1] and have[2:] == want[2:]
    return len(have) == len(want) >= 3 and have[1] == 3 and want[1] == 1 and same_rest
