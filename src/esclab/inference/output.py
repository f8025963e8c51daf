"""Prediction results as text: an aligned table, CSV or JSON, one row per file (or per segment)."""

from __future__ import annotations

import csv
import io
import json

from esclab.inference.results import Prediction

FORMATS = ("table", "json", "csv")


def result_rows(results: list[Prediction], long: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows naming each file.

    One row per file with its top classes (``label_i``, ``probability_i``), or with ``long`` one
    row per merged segment; a failed file gets one row with only ``file`` and ``error``.
    """
    if long:
        header = ["file", "start_s", "end_s", "label", "probability"]
    else:
        k = max((len(r.top_k) for r in results), default=0)
        header = ["file"] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "probability")]
    rows = []
    for r in results:
        if r.error is not None:
            rows.append([r.file] + [""] * (len(header) - 1) + [r.error])
        elif long:
            rows += [[r.file, f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label, f"{s.probability:.4f}", ""]
                     for s in r.segments]
        else:
            cells = [c for score in r.top_k for c in (score.label, f"{score.probability:.4f}")]
            rows.append([r.file, *cells, *[""] * (len(header) - 1 - len(cells)), ""])
    return header + ["error"], rows


def format_results(results: list[Prediction], fmt: str = "table", long: bool = False) -> str:
    """Render results as ``table``, ``csv`` (rows of :func:`result_rows`) or ``json`` (full records)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    header, rows = result_rows(results, long)
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        return buffer.getvalue().rstrip("\n")
    return _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; an error row shows its file then ``ERROR: message``."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=False))]
    for *cells, error in rows:
        if error:
            lines.append(f"{cells[0].ljust(widths[0])}  ERROR: {error}")
        else:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)
