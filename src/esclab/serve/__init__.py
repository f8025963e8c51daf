"""Local web server: ``create_app(predictor)`` for uvicorn (``esclab serve CKPT``)."""

from esclab.serve.app import create_app

__all__ = ["create_app"]
