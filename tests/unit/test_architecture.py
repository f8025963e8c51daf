"""The package's dependency picture is a straight stack: no import points up a layer, no package cycles, and
an import between two units of one layer only where :data:`SIDEWAYS` allows it.

cli -> train / evaluate / inference / serve / export -> bundle / runs -> models / augment / features / data
-> audio / config / console / errors / fsutil / weights / provenance / progress (docs/ARCHITECTURE.md). Imports
inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "esclab"
LAYERS = [
    {"__init__", "audio", "calibration", "config", "console", "errors", "fsutil", "weights", "provenance", "progress"},
    {"augment", "features", "data", "models"},
    {"bundle", "runs", "metrics", "tta", "model_card"},
    {"train", "evaluate", "inference", "serve", "export"},
    {"cli"},
]
LEVEL = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
# The imports allowed between units of one layer (importer, imported). errors and fsutil import nothing of esclab.
SIDEWAYS = {
    ("audio", "config"), ("audio", "errors"), ("config", "errors"), ("config", "fsutil"), ("config", "weights"),
    ("provenance", "__init__"), ("provenance", "fsutil"), ("weights", "errors"), ("weights", "fsutil"),
    ("augment", "features"), ("data", "augment"), ("data", "features"),
    ("runs", "bundle"), ("model_card", "runs"), ("model_card", "metrics"),
    ("inference", "evaluate"), ("serve", "evaluate"), ("serve", "inference"),
}


def unit_of(module: str) -> str:
    """``esclab.features.cache`` -> ``features``; ``esclab`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        unit = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("esclab"):
                names = [node.module] + ([f"esclab.{a.name}" for a in node.names] if node.module == "esclab" else [])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("esclab")]
            for name in names:
                target = unit_of(name)
                if target in LEVEL and target != unit:
                    edges.setdefault(unit, set()).add(target)
    return edges


def test_every_unit_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").is_file())}
    assert units <= set(LEVEL), f"put {sorted(units - set(LEVEL))} in a layer of LAYERS"


@pytest.mark.parametrize("unit", sorted(LEVEL))
def test_no_import_points_up(unit):
    up = sorted(t for t in package_imports().get(unit, ()) if LEVEL[t] > LEVEL[unit])
    assert not up, f"esclab.{unit} (layer {LEVEL[unit]}) imports higher layers: {up}"


def test_sideways_imports_are_the_allowed_ones():
    sideways = {(a, b) for a, targets in package_imports().items() for b in targets if LEVEL[a] == LEVEL[b]}
    assert not sideways - SIDEWAYS, f"imports inside one layer that SIDEWAYS does not allow: {sorted(sideways - SIDEWAYS)}"
    assert not SIDEWAYS - sideways, f"SIDEWAYS allows imports no module makes any more: {sorted(SIDEWAYS - sideways)}"


def test_no_cycles_between_packages():
    edges = package_imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if reaches(b, a, {b}))
    assert not cycles, f"package cycles: {cycles}"
