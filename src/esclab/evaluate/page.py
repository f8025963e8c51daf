"""What the HTML pages are made of: figures as data URIs with their numbers, sortable tables,
Jinja2 rendering from the package's ``templates/``, and strict JSON output."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from esclab.evaluate.gallery import GalleryItem
from esclab.evaluate.plots import to_data_uri
from esclab.fsutil import atomic_write


@dataclass
class Cell:
    """A table cell: what it shows and the key it sorts by (a number as JavaScript's ``Number`` reads it)."""

    text: str
    sort: str
    numeric: bool = False


@dataclass
class Table:
    """A sortable table: header and rows of cells."""

    columns: list[str]
    rows: list[list[Cell]]


def table_from_frame(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> Table:
    """Cells from a DataFrame; ``formats`` maps a column to a format spec such as ``".3f"``."""
    formats = formats or {}

    def cell(column: str, value: Any) -> Cell:
        if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
            number = float(value)
            key = repr(number) if math.isfinite(number) else {"inf": "Infinity", "-inf": "-Infinity"}.get(str(number), "")
            return Cell(format(value, formats.get(column, "g")), key, numeric=True)
        return Cell(str(value), str(value))

    return Table([str(c) for c in frame.columns],
                 [[cell(c, v) for c, v in zip(frame.columns, row, strict=True)] for row in frame.itertuples(index=False)])


@dataclass
class Figures:
    """The figures of one page: ``key -> data URI`` for the HTML and ``key -> numbers`` for the JSON."""

    images: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, fig: Figure, numbers: Any, dpi: int = 100, photo: bool = False) -> str:
        """Encode ``fig`` under ``key`` with the numbers it draws (JPEG with ``photo``); returns ``key``."""
        if key in self.images:
            raise ValueError(f"figure {key!r} added twice")
        self.images[key] = to_data_uri(fig, dpi=dpi, photo=photo)
        self.numbers[key] = numbers
        return key


@dataclass
class Section:
    """One part of a page; ``data`` goes to the page's JSON under ``sections[anchor]``.

    ``tables`` holds ``(caption, table, shown open)``.
    """

    anchor: str
    title: str
    text: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tables: list[tuple[str, Table, bool]] = field(default_factory=list)
    gallery: list[GalleryItem] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("esclab", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


def render(out: Path, title: str, meta: str, sections: list[Section], figures: Figures,
           details: list[tuple[str, str]] | None = None) -> Path:
    """Write the page: a title, a line of metadata, collapsed ``(summary, preformatted text)`` details
    and the sections, each figure embedded from ``figures``."""
    page = _ENV.get_template("page.html").render(title=title, meta=meta, sections=sections, images=figures.images,
                                                 details=[d for d in details or [] if d[1]])
    return atomic_write(out, page)


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: Any, out: Path) -> Path:
    """Write strict JSON (no NaN or Infinity), atomically."""
    return atomic_write(out, json.dumps(plain(data), indent=1, allow_nan=False))
