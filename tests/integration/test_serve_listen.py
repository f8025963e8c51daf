"""``POST /api/listen``: a live window's answer, refusals with a reason, and nothing kept (FastAPI TestClient)."""

from __future__ import annotations

import gc
import io
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from esclab.inference import Predictor
from esclab.serve import create_app
from tests.conftest import tone
from tests.unit.test_inference import CLASSES, write_tiny_bundle


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_checkpoint(write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "model.ckpt"))


@pytest.fixture
def client(predictor: Predictor):
    with TestClient(create_app(predictor, max_mb=0.25)) as client:
        yield client


def wav_bytes(seconds: float, sr: int = 48000, channels: int = 1, freq: float = 660.0) -> bytes:
    """A 16-bit PCM WAV held in memory, like the page sends."""
    wave = tone(freq, seconds, sr)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr, subtype="PCM_16",
             format="WAV")
    return buffer.getvalue()


def listen(client: TestClient, body: bytes, **params):
    return client.post("/api/listen", content=body, params=params, headers={"Content-Type": "audio/wav"})


def test_a_window_gets_its_top_classes_and_nothing_else(client: TestClient, predictor: Predictor):
    response = listen(client, wav_bytes(1.0, sr=16000, channels=2), top_k=2)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"duration_s", "top_k", "scores", "unknown", "reject_below"}
    assert body["duration_s"] == pytest.approx(1.0) and body["unknown"] is False
    assert body["scores"].startswith("softmax")
    expected = predictor.predict_wave(tone(660.0, 1.0, 16000), 16000, top_k=2).top_k
    assert [s["label"] for s in body["top_k"]] == [s.label for s in expected]
    assert [s["score"] for s in body["top_k"]] == pytest.approx([s.score for s in expected], abs=1e-3)
    short = listen(client, wav_bytes(0.4)).json()  # the first hops hold less than a clip: padded like an upload
    assert short["duration_s"] == pytest.approx(0.4) and len(short["top_k"]) == len(CLASSES)


def test_the_unknown_rule_reaches_the_answer(predictor: Predictor):
    strict = Predictor(predictor.bundle, reject_below=1.0)
    with TestClient(create_app(strict)) as client:
        body = listen(client, wav_bytes(1.0)).json()
    assert body["unknown"] is True and body["reject_below"] == 1.0
    assert body["top_k"][0]["label"] == "unknown" and body["top_k"][0]["score"] == body["top_k"][1]["score"]


@pytest.mark.parametrize(("body", "status", "reason"), [
    (b"", 400, "empty"),
    (b"this is not a sound file at all" * 10, 422, "not usable audio"),
    (wav_bytes(1.5), 413, "over the window limit of 1.05 s"),
    (b"\0" * 300_000, 413, "larger than the limit of 0.25 MB"),
])
def test_bad_windows_are_refused_with_a_reason(client: TestClient, body: bytes, status: int, reason: str):
    response = listen(client, body)
    assert response.status_code == status and reason in response.json()["detail"]


def test_a_body_without_content_length_is_still_capped(client: TestClient):
    response = client.post("/api/listen", content=iter([b"\0" * 100_000] * 3))  # chunked
    assert response.status_code == 413 and "larger than the limit" in response.json()["detail"]


def test_nothing_is_kept(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No temporary file is made, no app state is set, and memory does not grow with the windows heard."""
    def refuse(*args, **kwargs):
        raise AssertionError("the listen route must not write a temporary file")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the temp dir of this test alone
    window = wav_bytes(1.0, sr=44100, channels=2)  # 176 kB each: 30 of them kept would be 5 MB
    assert listen(client, window).status_code == 200  # warm up
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(30):
            assert listen(client, window).status_code == 200
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"{grown} bytes more after 30 windows"
    assert not vars(client.app.state)["_state"]
    assert not any(tmp_path.iterdir())
