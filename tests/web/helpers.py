"""Helpers of the web app tests: the tiny network, small test images, polling."""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from stylize.backbone import Backbone, tiny_backbone
from stylize.network import NetworkCache
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

    It runs in the job process, so its events are process-shared (they travel with the factory
    when the job process starts). With ``pause`` each forward pass of the network then takes at
    least that many seconds, so that a fast job cannot finish between two polls of the event
    stream once the test is listening.
    """

    def __init__(self, pause: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self.event = context.Event()
        self.entered = context.Event()
        self.pause = pause

    def __call__(self, opts: Options) -> Backbone:
        self.entered.set()
        assert self.event.wait(60), "the test never opened the gate"
        return Slow(self.pause)(opts)


class Slow:
    """The tiny network, with every forward pass taking at least ``pause`` seconds."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    def __call__(self, opts: Options) -> Backbone:
        backbone = tiny_factory(opts)
        if self.pause:
            backbone.register_forward_pre_hook(lambda module, args: time.sleep(self.pause))
        return backbone


def flaky_factory(opts: Options) -> Backbone:
    """The tiny network, except for average pooling, where it fails with a message naming a path."""
    if opts.pooling == "average":
        raise RuntimeError("the network exploded in /secret/server/path")
    return tiny_factory(opts)


def pid_factory(opts: Options) -> Backbone:
    """The tiny network, described with the process that made it (``tiny (pid N, nice M)``)."""
    backbone = tiny_factory(opts)
    backbone.description = f"tiny (pid {os.getpid()}, nice {os.nice(0)})"
    return backbone


def crash_factory(opts: Options) -> Backbone:
    """Kills its process for average pooling (a crash of the job process); the tiny network otherwise."""
    if opts.pooling == "average":
        os._exit(3)
    return tiny_factory(opts)


class CountingCache(NetworkCache):
    """The web app's default network cache, writing a line to ``log`` for every network it loads."""

    def __init__(self, log: Path) -> None:
        super().__init__()
        self.log = log

    def __call__(self, opts: Options) -> Backbone:
        with self.log.open("a") as handle:
            handle.write(f"{os.getpid()} {'cached' if self.key(opts) in self._entries else 'loaded'}\n")
        return super().__call__(opts)

    def __reduce__(self) -> tuple[Any, ...]:  # its cache and lock stay in each process
        return CountingCache, (self.log,)
