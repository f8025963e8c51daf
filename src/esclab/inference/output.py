"""Prediction results as text: an aligned table, CSV or JSON, one row per file (or per segment or window)."""

from __future__ import annotations

import csv
import io
import json

from esclab.inference.results import ClassScore, Prediction

FORMATS = ("table", "json", "csv")


def result_rows(results: list[Prediction], long: bool = False, *, windows: bool = False,
                score: str = "probability") -> tuple[list[str], list[list[str]]]:
    """Header and rows naming each file.

    One row per file with its top classes (``label_i``, ``{score}_i``); with ``long`` one row per
    merged segment; with ``windows`` one row per sliding window with its top classes. A failed file
    gets one row with only ``file`` and ``error``. ``score`` names the score columns (``sigmoid``
    for multi-label tags).
    """
    if windows:
        k = max((len(w.top_k) for r in results for w in r.windows), default=0)
        header = ["file", "start_s", "end_s", *_score_header(k, score)]
    elif long:
        header = ["file", "start_s", "end_s", "label", score]
    else:
        header = ["file", *_score_header(max((len(r.top_k) for r in results), default=0), score)]
    width = len(header) - 1
    rows = []
    for r in results:
        if r.error is not None:
            rows.append([r.file] + [""] * width + [r.error])
        elif windows:
            rows += [[r.file, f"{w.start_s:.2f}", f"{w.end_s:.2f}", *_score_cells(w.top_k, width - 2), ""]
                     for w in r.windows]
        elif long:
            rows += [[r.file, f"{s.start_s:.2f}", f"{s.end_s:.2f}", s.label, f"{s.probability:.4f}", ""]
                     for s in r.segments]
        else:
            rows.append([r.file, *_score_cells(r.top_k, width), ""])
    return header + ["error"], rows


def _score_header(k: int, score: str) -> list[str]:
    return [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", score)]


def _score_cells(scores: list[ClassScore], width: int) -> list[str]:
    """Label and score cells, padded with empty cells to ``width``."""
    cells = [c for s in scores for c in (s.label, f"{s.probability:.4f}")]
    return [*cells, *[""] * (width - len(cells))]


def format_results(results: list[Prediction], fmt: str = "table", long: bool = False, *,
                   windows: bool = False, score: str = "probability") -> str:
    """Render results as ``table``, ``csv`` (rows of :func:`result_rows`) or ``json`` (full records)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    header, rows = result_rows(results, long, windows=windows, score=score)
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
