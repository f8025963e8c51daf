"""The local web server: a JSON API over a :class:`~esclab.inference.Predictor` and a one-file page.

Routes:
    ``GET /``: the page (upload or drop a file; top classes, spectrogram, heatmap).
    ``GET /api/health``: status, model and limits.
    ``POST /api/predict``: multipart field ``file``; query ``top_k`` (default 5). Answers the
    :class:`~esclab.inference.Prediction` fields (``file``, ``duration_s``, ``top_k``, and for a
    file longer than the model's clip ``windows`` and ``segments``) plus ``spectrogram_png`` and
    ``heatmap_png`` (``data:image/png;base64,...`` URIs; the heatmap is ``null`` for a model with
    neither attention maps nor a Grad-CAM layer) and ``heatmap_source`` (``"attention"``,
    ``"Grad-CAM"`` or ``"none"``, from :mod:`esclab.evaluate.heatmaps`). Errors answer
    ``{"detail": message}`` with 400 (empty upload), 413 (too many bytes or seconds) or 422
    (not decodable audio, or a missing ``file`` field).
"""

from __future__ import annotations

import threading
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from matplotlib.figure import Figure

from esclab import __version__
from esclab.audio import pad_or_trim
from esclab.evaluate.heatmaps import explain
from esclab.evaluate.plots import SpectrogramPanel, spectrogram_figure, to_data_uri
from esclab.inference import Predictor
from esclab.inference.timeline import timeline_figure
from esclab.serve.upload import Limits, UploadError, decode_upload

MULTIPART_OVERHEAD = 64 * 1024  # bytes of multipart framing allowed on top of the file itself


def _panel_figure(panel: SpectrogramPanel, seconds_per_frame: float) -> Figure:
    return spectrogram_figure([panel], seconds_per_frame, ncols=1, panel_size=(6.4, 2.8))


def analyse(predictor: Predictor, wave: np.ndarray, name: str, top_k: int) -> dict[str, Any]:
    """Prediction, spectrogram and heatmap of one decoded upload, as the API's JSON body.

    A file longer than the model's clip gets sliding windows and a timeline as its spectrogram;
    the heatmap is of its first clip.
    """
    long = len(wave) > predictor.clip_samples
    if long:
        result = predictor.predict_long_wave(wave, predictor.sample_rate, top_k=top_k, name=name)
    else:
        result = predictor.predict_wave(wave, predictor.sample_rate, top_k, name)
    label = result.top_k[0].label
    clip = pad_or_trim(wave, predictor.clip_samples)[None]
    view = explain(predictor.bundle, clip, np.array([predictor.class_names.index(label)]))[0]
    frame_s = predictor.bundle.seconds_per_frame
    if long:
        spectrogram = timeline_figure(predictor.spectrogram(wave), result.duration_s, result.segments,
                                      predictor.class_names, title=name)
    else:
        spectrogram = _panel_figure(SpectrogramPanel(view.spec_db, None, f"{name}: the log-mel the model saw"),
                                    frame_s)
    heatmap = None
    if view.heat is not None:
        where = f"first {predictor.clip_seconds:g} s" if long else "clip"
        heatmap = to_data_uri(_panel_figure(SpectrogramPanel(view.spec_db, view.heat,
                                                             f"{view.method} for {label!r} ({where})"), frame_s))
    return {**result.to_dict(), "spectrogram_png": to_data_uri(spectrogram), "heatmap_png": heatmap,
            "heatmap_source": view.method}


def create_app(predictor: Predictor, max_mb: float = 20.0, max_seconds: float = 600.0) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    Args:
        predictor: the model.
        max_mb: largest upload in MiB (413 above it; refused from ``Content-Length`` before reading).
        max_seconds: longest audio in seconds (413 above it).
    """
    limits = Limits(max_mb=max_mb, max_seconds=max_seconds)
    page = (files("esclab") / "static" / "index.html").read_text(encoding="utf-8")
    lock = threading.Lock()  # Grad-CAM hooks the shared model and pyplot is not thread-safe
    app = FastAPI(title="esclab", version=__version__)

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_bytes + MULTIPART_OVERHEAD:
            return JSONResponse(status_code=413, content={
                "detail": f"the upload is larger than the limit of {max_mb:g} MB"})
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        b = predictor.bundle
        return {"status": "ok", "model": b.model_name, "classes": len(b.class_names),
                "sample_rate": predictor.sample_rate, "clip_seconds": predictor.clip_seconds,
                "max_mb": max_mb, "max_seconds": max_seconds, "esclab_version": __version__}

    @app.post("/api/predict")
    def predict(file: UploadFile = File(...), top_k: int = Query(5, ge=1)) -> dict[str, Any]:
        try:
            wave = decode_upload(file, predictor, limits)
        except UploadError as err:
            raise HTTPException(status_code=err.status, detail=err.message) from err
        with lock:
            return analyse(predictor, wave, file.filename or "upload", top_k)

    return app
