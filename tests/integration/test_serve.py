"""The web API: good, bad, oversized and over-long uploads, pictures on request, concurrent requests batched,
health, the page (FastAPI TestClient)."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from esclab.inference import Predictor
from esclab.serve import create_app
from tests.unit.test_inference import CLASSES, write_clip, write_tiny_bundle


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_checkpoint(write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "model.ckpt"))


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> TestClient:
    return TestClient(create_app(predictor, max_mb=0.25, max_seconds=10))


def post(client: TestClient, path: Path, name: str | None = None, **params):
    with path.open("rb") as f:
        return client.post("/api/predict", params=params,
                           files={"file": (name or path.name, f, "application/octet-stream")})


def is_png(data_uri: str) -> bool:
    prefix = "data:image/png;base64,"
    return data_uri.startswith(prefix) and base64.b64decode(data_uri[len(prefix):])[:4] == b"\x89PNG"


def test_health_and_page(client: TestClient):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["classes"] == 3 and health["max_seconds"] == 10
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "/api/predict" in page.text


PICTURES = ("spectrogram_png", "heatmap_png", "heatmap_source")


def test_a_good_clip_gets_top_classes_and_no_pictures_unless_asked(client: TestClient, predictor: Predictor,
                                                                   tmp_path: Path):
    clip = write_clip(tmp_path / "clip.wav", seconds=0.8, sr=22050)
    response = post(client, clip)
    assert response.status_code == 200
    body = response.json()
    assert body["file"] == "clip.wav" and body["windows"] == [] and body["duration_s"] == pytest.approx(0.8)
    expected = predictor.predict_file(clip, 5).top_k
    assert [s["label"] for s in body["top_k"]] == [s.label for s in expected]
    assert [s["score"] for s in body["top_k"]] == pytest.approx([s.score for s in expected], abs=1e-6)
    assert not set(PICTURES) & set(body)
    pictured = post(client, clip, pictures="true").json()
    assert pictured["top_k"] == body["top_k"]
    assert is_png(pictured["spectrogram_png"]) and is_png(pictured["heatmap_png"])
    assert pictured["heatmap_source"] == "Grad-CAM"


def test_a_long_file_gets_windows(client: TestClient, tmp_path: Path):
    response = post(client, write_clip(tmp_path / "long.wav", seconds=3.3), pictures="1")
    body = response.json()
    assert response.status_code == 200 and len(body["windows"]) == 6
    assert body["windows"][-1]["end_s"] == pytest.approx(3.3) and body["segments"][-1]["end_s"] == pytest.approx(3.3)
    assert all(s["label"] in CLASSES for s in body["segments"])
    assert is_png(body["spectrogram_png"]) and is_png(body["heatmap_png"])


def test_concurrent_requests_share_forward_passes(predictor: Predictor, tmp_path: Path):
    clips = [write_clip(tmp_path / f"tone_{i}.wav", seconds=0.5 + 0.1 * i, freq=200.0 + 350 * i) for i in range(6)]
    # a long wait: a batch closes when 3 clips are in, whatever the load on the test machine
    with TestClient(create_app(predictor, max_batch=3, max_wait_ms=5000)) as client, ThreadPoolExecutor(6) as pool:
        bodies = [r.json() for r in pool.map(lambda clip: post(client, clip, top_k=3), clips)]
        batching = client.get("/api/health").json()["batching"]
    assert batching["clips"] == 6 and batching["largest"] == 3 and batching["batches"] == 2
    for clip, body in zip(clips, bodies, strict=True):
        expected = predictor.predict_file(clip, 3)
        assert body["file"] == clip.name and body["duration_s"] == pytest.approx(expected.duration_s)
        assert [s["label"] for s in body["top_k"]] == [s.label for s in expected.top_k]
        assert [s["score"] for s in body["top_k"]] == pytest.approx([s.score for s in expected.top_k],
                                                                          abs=1e-5)


@pytest.mark.parametrize(("content", "status", "message"), [
    (b"", 400, "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", 422, "not usable audio"),
    (b"plain text, not audio\n" * 40, 422, "not usable audio"),
], ids=["empty", "truncated-header", "not-audio"])
def test_bad_uploads_get_clear_errors(client: TestClient, tmp_path: Path, content: bytes, status: int, message: str):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    response = post(client, path)
    assert response.status_code == status and message in response.json()["detail"]
    assert "bad.wav" in response.json()["detail"] and str(tmp_path) not in response.json()["detail"]


def test_nan_samples_are_refused(client: TestClient, tmp_path: Path):
    wave = np.full(4000, 0.1, np.float32)
    wave[7] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 8000, subtype="FLOAT")
    response = post(client, tmp_path / "nan.wav")
    assert response.status_code == 422 and "NaN" in response.json()["detail"]


def test_a_missing_file_field_is_422(client: TestClient):
    assert client.post("/api/predict", data={"something": "else"}).status_code == 422


def test_oversized_uploads_are_413(client: TestClient, tmp_path: Path):
    # 0.25 MB limit: 0.3 MB is refused in the handler, 2 MB already from Content-Length by the middleware
    for seconds in (9.4, 62.5):
        path = tmp_path / "big.wav"
        sf.write(path, np.zeros(int(seconds * 16000), np.float32), 16000, subtype="PCM_16")
        response = post(client, path)
        assert response.status_code == 413 and "limit of 0.25 MB" in response.json()["detail"]


def test_over_long_audio_is_413(client: TestClient, tmp_path: Path):
    path = tmp_path / "eleven_seconds.wav"
    sf.write(path, np.zeros(11 * 2000, np.float32), 2000, subtype="PCM_U8")  # 22 kB: small, but 11 s
    response = post(client, path)
    assert response.status_code == 413 and "limit of 10 s" in response.json()["detail"]


def test_attention_models_show_their_own_maps(tmp_path: Path):
    bundle = write_tiny_bundle(tmp_path / "attention.ckpt", model_name="attention_cnn")
    client = TestClient(create_app(Predictor.from_checkpoint(bundle)))
    body = post(client, write_clip(tmp_path / "a.wav"), pictures="true").json()
    assert body["heatmap_source"] == "attention" and is_png(body["heatmap_png"])
