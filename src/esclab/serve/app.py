"""The local web server: a JSON API over a :class:`~esclab.inference.Predictor`, and its page.

Routes:
    ``GET /``: the page (upload or drop a file; top classes, spectrogram, heatmap; or listen to the
    microphone: ``GET /listen.js`` records it and posts a window every hop to ``/api/listen``).
    ``GET /api/health``: status, model, limits and batching counters.
    ``GET /model-card``: the model card as ``text/markdown`` (:func:`esclab.model_card.bundle_model_card`: the
    run's ``MODEL_CARD.md`` for a run folder, else the bundle's own card facts); 404 for a bundle without one.
    ``POST /api/predict``: multipart field ``file``; query ``top_k`` (default 5) and ``pictures``
    (default false). Answers the :class:`~esclab.inference.Prediction` fields (``file``,
    ``duration_s``, ``top_k``, and for a file longer than the model's clip ``windows`` and
    ``segments``). With ``pictures=true`` (the page asks for them) the body also has
    ``spectrogram_png`` and ``heatmap_png`` (``data:image/png;base64,...`` URIs; the heatmap is
    ``null`` for a model with neither attention maps nor a Grad-CAM layer) and
    ``heatmap_source`` (``"attention"``, ``"Grad-CAM"`` or ``"none"``, from
    :mod:`esclab.evaluate.heatmaps`). Errors answer ``{"detail": message}`` with 400 (empty
    upload), 413 (too many bytes or seconds) or 422 (not decodable audio, or a missing ``file``
    field).
    ``POST /api/events``: multipart field ``file`` (a recording); query settings as ``esclab predict --long
    --events`` has them. Answers the record of ``/api/predict`` with its windows and ``events``
    (``onset``, ``offset``, ``label``, ``score`` in seconds); bad settings 422 with the reason.
    ``POST /api/listen``: the body is one live window, a WAV (16-bit PCM from the page; any format
    soundfile reads) of at most the model's clip length; query ``top_k`` (default 5). Answers only
    ``duration_s``, ``top_k``, ``scores``, ``unknown`` and ``reject_below`` (no pictures). The window is
    decoded in memory and dropped after the answer: no file is written and nothing is kept. Errors:
    400 (empty body), 413 (too many bytes, or longer than the clip) or 422 (not decodable audio).

Clips no longer than the model's clip length from concurrent requests go through the model
together (:class:`~esclab.serve.batching.MicroBatcher`); decoding runs in each request's
worker thread. Longer files are windowed in their request's thread. Pictures are drawn from a
copy of the model under a lock, because Grad-CAM hooks the model it runs on and the batcher
keeps using the shared one.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib.resources import files
from typing import Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from matplotlib.figure import Figure
from starlette.concurrency import run_in_threadpool

from esclab import __version__
from esclab.audio import pad_or_trim
from esclab.bundle import Bundle
from esclab.evaluate.heatmaps import explain
from esclab.evaluate.plots import SpectrogramPanel, spectrogram_figure, to_data_uri
from esclab.inference import Prediction, Predictor
from esclab.inference.timeline import timeline_figure
from esclab.model_card import bundle_model_card
from esclab.serve.batching import MicroBatcher
from esclab.serve.upload import Limits, UploadError, decode_upload, decode_window, read_body

MULTIPART_OVERHEAD = 64 * 1024  # bytes of multipart framing allowed on top of the file itself
LISTEN_SLACK_S = 0.05  # a live window may pass the clip length by this much (the page rounds to its own rate)
LISTEN_FIELDS = ("duration_s", "top_k", "scores", "unknown", "reject_below")  # what /api/listen answers


def _panel_figure(panel: SpectrogramPanel, seconds_per_frame: float) -> Figure:
    return spectrogram_figure([panel], seconds_per_frame, ncols=1, panel_size=(6.4, 2.8))


def draw_pictures(predictor: Predictor, explainer: Bundle, wave: np.ndarray, result: Prediction) -> dict[str, Any]:
    """Spectrogram and heatmap of one decoded upload, as the API's picture fields.

    A file longer than the model's clip gets its timeline as its spectrogram; the heatmap is of
    its first clip.

    Args:
        predictor: the model that made ``result``.
        explainer: the bundle Grad-CAM runs on (a copy of the predictor's, see the module notes).
        wave: the upload at the model's rate.
        result: its prediction.
    """
    long = len(wave) > predictor.clip_samples
    label, name = result.top_k[0].label, result.file
    clip = pad_or_trim(wave, predictor.clip_samples)[None]
    view = explain(explainer, clip, np.array([predictor.class_names.index(label)]))[0]
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
    return {"spectrogram_png": to_data_uri(spectrogram), "heatmap_png": heatmap, "heatmap_source": view.method}


def clip_batcher(predictor: Predictor, max_batch: int, max_wait_s: float) -> MicroBatcher:
    """A batcher of clip-length ``(clip_samples,)`` waveforms -> ``(num_classes,)`` probability rows."""
    return MicroBatcher(lambda clips: list(predictor.probabilities(clips)), max_batch, max_wait_s)


def create_app(predictor: Predictor, max_mb: float = 20.0, max_seconds: float = 600.0, max_batch: int = 8,
               max_wait_ms: float = 5.0) -> FastAPI:
    """The FastAPI app serving ``predictor``.

    Args:
        predictor: the model.
        max_mb: largest upload in MiB (413 above it; refused from ``Content-Length`` before reading).
        max_seconds: longest audio in seconds (413 above it).
        max_batch: most clips of concurrent requests in one forward pass.
        max_wait_ms: longest a forward pass waits for more requests after its first one.
    """
    limits = Limits(max_mb=max_mb, max_seconds=max_seconds)
    static = files("esclab") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    listen_js = (static / "listen.js").read_text(encoding="utf-8")
    batcher = clip_batcher(predictor, max_batch, max_wait_ms / 1000)
    explainers: list[Bundle] = []  # the copy Grad-CAM runs on, made by the first request that wants pictures
    picture_lock = threading.Lock()  # Grad-CAM hooks the explainer's model, and one figure at a time

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        batcher.close()

    app = FastAPI(title="esclab", version=__version__, lifespan=lifespan)

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

    @app.get("/listen.js", include_in_schema=False)
    def listen_script() -> Response:
        return Response(listen_js, media_type="text/javascript")

    @app.get("/model-card", include_in_schema=False)
    def model_card() -> Response:
        text = bundle_model_card(predictor.checkpoint, predictor.bundle.card)
        if text is None:
            raise HTTPException(status_code=404, detail="this bundle carries no model card (written before bundles "
                                "carried one, outside a run folder): serve its run folder, or retrain it")
        return Response(text, media_type="text/markdown; charset=utf-8",
                        headers={"Content-Disposition": 'inline; filename="MODEL_CARD.md"'})

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        b = predictor.bundle
        return {"status": "ok", "model": b.model_name, "classes": len(b.class_names),
                "sample_rate": predictor.sample_rate, "clip_seconds": predictor.clip_seconds,
                "max_mb": max_mb, "max_seconds": max_seconds, "esclab_version": __version__,
                "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "batches": batcher.stats.batches,
                             "clips": batcher.stats.items, "largest": batcher.stats.largest}}

    @app.post("/api/predict")
    def predict(file: UploadFile = File(...), top_k: int = Query(5, ge=1),
                pictures: bool = Query(False, description="add the spectrogram and heatmap images")) -> dict[str, Any]:
        try:
            wave = decode_upload(file, predictor, limits)
        except UploadError as err:
            raise HTTPException(status_code=err.status, detail=err.message) from err
        name = file.filename or "upload"
        if len(wave) > predictor.clip_samples:
            result = predictor.predict_long_wave(wave, predictor.sample_rate, top_k=top_k, name=name)
        else:
            probabilities = batcher.submit(pad_or_trim(wave, predictor.clip_samples)).result()
            result = predictor.clip_prediction(probabilities, len(wave), top_k, name)
        body = result.to_dict()
        if pictures:
            with picture_lock:
                if not explainers:
                    explainers.append(replace(predictor.bundle, model=copy.deepcopy(predictor.bundle.model)))
                body |= draw_pictures(predictor, explainers[0], wave, result)
        return body

    @app.post("/api/events")
    def events(file: UploadFile = File(...), top_k: int = Query(3, ge=1),
               window_s: float | None = Query(None, gt=0, description="window (default 2 s, at most the clip)"),
               hop_s: float | None = Query(None, gt=0, description="hop (default 0.5 s)"),
               median: int | None = Query(None, ge=1, description="median filter in windows, odd (default 3)"),
               min_duration_s: float | None = Query(None, ge=0, description="default: 3/4 of the window"),
               merge_gap_s: float | None = Query(None, ge=0, description="default 1.5 s"),
               min_level_db: float | None = Query(None, description="level gate in dBFS (default -60)")) -> dict[str, Any]:
        """The sound events of an uploaded recording (``Predictor.detect_events``): the record of ``/api/predict``
        with every window, segment and ``events`` (``onset``, ``offset``, ``label``, ``score``; seconds). Settings
        left out take :class:`~esclab.inference.events.EventSettings`'s defaults; impossible ones answer 422 with
        the reason, and uploads fail as in ``/api/predict``."""
        from esclab.inference import WindowError
        from esclab.inference.events import EventError, EventSettings

        given = {"median": median, "min_duration_s": min_duration_s, "merge_gap_s": merge_gap_s,
                 "min_level_db": min_level_db}
        try:
            settings = EventSettings(**{name: value for name, value in given.items() if value is not None})
            predictor.event_window_samples(window_s, hop_s)
            wave = decode_upload(file, predictor, limits)
        except (EventError, WindowError) as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        except UploadError as err:
            raise HTTPException(status_code=err.status, detail=err.message) from err
        return predictor.detect_events(wave, predictor.sample_rate, window_s, hop_s, settings, top_k,
                                       file.filename or "upload").to_dict()

    @app.post("/api/listen")
    async def listen(request: Request, top_k: int = Query(5, ge=1)) -> dict[str, Any]:
        try:
            data = await read_body(request, limits)
            wave = await run_in_threadpool(decode_window, data, predictor, predictor.clip_seconds + LISTEN_SLACK_S)
        except UploadError as err:
            raise HTTPException(status_code=err.status, detail=err.message) from err
        probabilities = await asyncio.wrap_future(batcher.submit(pad_or_trim(wave, predictor.clip_samples)))
        record = predictor.clip_prediction(probabilities, len(wave), top_k, "listen").to_dict()
        return {key: record[key] for key in LISTEN_FIELDS}

    return app
