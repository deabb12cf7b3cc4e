"""Helpers of the web app tests: the tiny network, small test images, polling."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from stylize.backbone import Backbone, tiny_backbone
from stylize.options import Options

#: Options of a short job (single scale, small, no early stop): about a second with the tiny network.
QUICK = {"size": 64, "steps": 12, "scales": "1", "tol": 0}


def tiny_factory(opts: Options) -> Backbone:
    """The tiny seeded network, whole (so unknown layer names reach stylize.transfer's own check)."""
    return tiny_backbone(opts.model, pooling=opts.pooling, seed=0)


def image_bytes(width: int, height: int, seed: int, fmt: str = "PNG") -> bytes:
    """A seeded smooth colourful image, encoded."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def upload(client: TestClient, data: bytes, name: str = "photo.png") -> dict[str, Any]:
    response = client.post("/api/uploads", files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


def start_job(client: TestClient, content: dict[str, str], styles: list[dict[str, str]],
              **options: Any) -> dict[str, Any]:
    response = client.post("/api/jobs", json={"content": content, "styles": styles, "options": options})
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(client: TestClient, job_id: str, condition: Callable[[dict[str, Any]], bool],
             timeout: float = 120.0) -> dict[str, Any]:
    """Poll the job until ``condition(snapshot)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        snap = client.get(f"/api/jobs/{job_id}").json()
        if condition(snap):
            return snap
        assert time.monotonic() < deadline, f"timed out; last snapshot: {snap['status']} {snap['phase']}"
        time.sleep(0.02)


def finished(snap: dict[str, Any]) -> bool:
    return snap["status"] in ("done", "cancelled", "failed")


class Gate:
    """A backbone factory that waits until opened: keeps a job 'running' for as long as a test needs.

    With ``pause`` each forward pass of the network then takes at least that many seconds, so that
    a fast job cannot finish between two polls of the event stream once the test is listening.
    """

    def __init__(self, pause: float = 0.0) -> None:
        self.event = threading.Event()
        self.entered = threading.Event()
        self.pause = pause

    def __call__(self, opts: Options) -> Backbone:
        self.entered.set()
        assert self.event.wait(60), "the test never opened the gate"
        backbone = tiny_factory(opts)
        if self.pause:
            backbone.register_forward_pre_hook(lambda module, args: time.sleep(self.pause))
        return backbone
