"""The local web app behind ``stylize serve``: upload images, watch the painting appear, download it.

Build the ASGI app with :func:`create_app` and run it with uvicorn. Needs the ``web`` extra
(``pip install 'stylize[web]'``: FastAPI, uvicorn, python-multipart). The job processes import
only :mod:`stylize.web.worker` and what it needs (no FastAPI), hence the lazy import here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from stylize.web.app import create_app

        return create_app
    raise AttributeError(f"module 'stylize.web' has no attribute {name!r}")
