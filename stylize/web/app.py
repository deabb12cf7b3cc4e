"""The FastAPI app: the page, its JSON API and the live event stream.

API (all JSON unless noted; errors are ``{"detail": "one line"}``):

* ``GET /api/options``: the options form (from :class:`stylize.Options`), limits, examples.
* ``GET /api/examples/{name}``: an example image (JPEG), by name from a fixed list.
* ``POST /api/uploads``: multipart ``file``; checked as an image; answers ``{id, label, width, height}``.
* ``POST /api/jobs``: ``{content: {upload: id} | {example: name}, styles: [...], options: {...}}``.
* ``GET /api/jobs/{id}``: a snapshot (status, queue position, progress, losses, result).
* ``GET /api/jobs/{id}/events?offset=N``: server-sent events, one ``update`` snapshot at most every
  ``event_interval`` seconds while something changes, with the loss points from ``offset`` on;
  the stream ends after the job's final snapshot.
* ``POST /api/jobs/{id}/cancel``; ``GET /api/jobs/{id}/preview.jpg``; ``GET /api/jobs/{id}/result.png``.

Nothing a client sends is used as a path: uploads and results are stored under uuid4 names the
server chooses, examples are looked up by name, jobs by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from stylize.errors import InputError, StylizeError
from stylize.imageio import DEFAULT_MAX_PIXELS
from stylize.web.examples import EXAMPLES, available_examples
from stylize.web.form import FormLimits, form_fields, parse_options
from stylize.web.guards import LOOPBACK_HOSTS, BodyLimit, HostCheck, SecurityHeaders
from stylize.web.jobs import TERMINAL, ImageInput, Job, JobQueue, QueueFullError
from stylize.web.runner import BackboneFactory, JobRunner
from stylize.web.uploads import UploadStore, UploadTooLargeError, parse_id

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_STYLES = 8


class ImageRef(BaseModel):
    """An uploaded image by id, or an example by name."""

    model_config = ConfigDict(extra="forbid")
    upload: str | None = Field(default=None, max_length=64)
    example: str | None = Field(default=None, max_length=64)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: ImageRef
    styles: list[ImageRef] = Field(min_length=1, max_length=MAX_STYLES)
    options: dict[str, Any] = Field(default_factory=dict)


def create_app(
    *,
    backbone_factory: BackboneFactory | None = None,
    max_upload_bytes: int = 25 * 2**20,
    max_upload_pixels: int = 50_000_000,
    max_size: int = 2048,
    max_steps: int = 2000,
    devices: Iterable[str] = ("auto",),
    preview_interval: float = 0.5,
    event_interval: float = 0.25,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    work_dir: str | Path | None = None,
    allow_download: bool = True,
    max_waiting: int = 20,
) -> FastAPI:
    """Build the web app.

    Args:
        backbone_factory: ``Options -> Backbone``; default: load the real network once and keep it
            (tests pass one that returns :func:`stylize.backbone.tiny_backbone`).
        max_upload_bytes, max_upload_pixels: limits on each uploaded image.
        max_size, max_steps: the largest ``size`` and ``steps`` a visitor may ask for.
        devices: one worker (and so one running job at a time) per device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        preview_interval: seconds between preview images of a running job (at most).
        event_interval: seconds between live updates sent to the page (at most).
        allowed_hosts: host names the Host header may carry (None: any; default: loopback names).
        work_dir: where uploads and results go (default: a temporary folder removed at shutdown).
        allow_download: whether the default network loader may download official weights.
        max_waiting: most jobs waiting in the queue.
    """
    if max_upload_pixels > DEFAULT_MAX_PIXELS:
        raise ValueError(f"max_upload_pixels may be at most {DEFAULT_MAX_PIXELS}")
    temp = None if work_dir is not None else tempfile.TemporaryDirectory(prefix="stylize-web-")
    root = Path(work_dir if work_dir is not None else temp.name)  # type: ignore[union-attr]
    limits = FormLimits(max_size=max_size, max_steps=max_steps)
    uploads = UploadStore(root / "uploads", max_bytes=max_upload_bytes, max_pixels=max_upload_pixels)
    runner = JobRunner(root / "results", backbone_factory=backbone_factory, preview_interval=preview_interval,
                       max_pixels=max_upload_pixels, allow_download=allow_download)

    def forget(job: Job) -> None:
        if job.result is not None:
            job.result.path.unlink(missing_ok=True)

    queue = JobQueue(runner, devices=tuple(devices), max_waiting=max_waiting, on_forget=forget)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(queue.close)
        if temp is not None:
            temp.cleanup()

    app = FastAPI(title="stylize", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.queue = queue
    app.state.runner = runner
    app.state.uploads = uploads
    app.state.work_dir = root

    # Outermost last: host check first, then the size limit, then headers on every answer.
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes + 2**20)  # room for the multipart framing
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed_hosts=tuple(allowed_hosts))

    @app.exception_handler(StylizeError)
    async def stylize_error(request: Request, exc: StylizeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=400)

    def find_job(job_id: str) -> Job:
        key = parse_id(job_id)
        job = queue.get(key) if key else None
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    def resolve(ref: ImageRef, role: str) -> ImageInput:
        if (ref.upload is None) == (ref.example is None):
            raise InputError(None, f"{role}: give either an upload id or an example name")
        if ref.upload is not None:
            upload = uploads.get(ref.upload)
            if upload is None:
                raise InputError(None, f"{role}: no such upload (it may have expired; upload it again)")
            return ImageInput(upload.label, upload.path)
        example = EXAMPLES.get(ref.example or "")
        if example is None or not example.path.is_file():
            raise InputError(None, f"{role}: no example named {ref.example!r}")
        return ImageInput(example.name, example.path)

    # -- the page

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # -- options and examples

    @app.get("/api/options")
    async def options() -> dict[str, Any]:
        return {
            "fields": [f.as_json() for f in form_fields(limits)],
            "limits": {"max_size": max_size, "max_steps": max_steps, "max_upload_bytes": max_upload_bytes,
                       "max_upload_pixels": max_upload_pixels, "max_styles": MAX_STYLES},
            "examples": [{"name": e.name, "kind": e.kind, "title": e.title, "credit": e.credit,
                          "url": f"/api/examples/{e.name}"} for e in available_examples()],
        }

    @app.get("/api/examples/{name}")
    async def example_image(name: str) -> FileResponse:
        example = EXAMPLES.get(name)
        if example is None or not example.path.is_file():
            raise HTTPException(404, "no such example")
        return FileResponse(example.path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    # -- uploads

    @app.post("/api/uploads", status_code=201)
    async def upload(file: UploadFile = File(...)) -> dict[str, Any]:
        async def chunks() -> AsyncIterator[bytes]:
            while data := await file.read(2**20):
                yield data

        try:
            stored = await uploads.add(chunks(), file.filename)
        except UploadTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        finally:
            await file.close()
        return {"id": stored.id, "label": stored.label, "width": stored.width, "height": stored.height}

    # -- jobs

    @app.post("/api/jobs", status_code=201)
    async def create_job(request: JobRequest) -> dict[str, Any]:
        content = resolve(request.content, "content image")
        styles = [resolve(ref, f"style image {i + 1}") for i, ref in enumerate(request.styles)]
        job = Job(content=content, styles=styles, options=parse_options(request.options, limits))
        try:
            queue.submit(job)
        except QueueFullError as exc:
            raise HTTPException(429, str(exc)) from None
        return queue.snapshot(job)

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str, offset: int = 0) -> dict[str, Any]:
        return queue.snapshot(find_job(job_id), offset)

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        job = find_job(job_id)
        queue.cancel(job)
        return queue.snapshot(job, len(job.losses))

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, offset: int = 0) -> StreamingResponse:
        job = find_job(job_id)
        return StreamingResponse(_events(queue, job, offset, event_interval), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}/preview.jpg")
    async def job_preview(job_id: str) -> Response:
        jpeg = find_job(job_id).preview
        if jpeg is None:
            raise HTTPException(404, "no preview yet")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @app.get("/api/jobs/{job_id}/result.png")
    async def job_result(job_id: str) -> FileResponse:
        job = find_job(job_id)
        if job.result is None or not job.result.path.is_file():
            raise HTTPException(404, "this job has no result (yet)")
        name = f"stylized_{Path(job.content.label).stem}_{job.id[:8]}.png"
        return FileResponse(job.result.path, media_type="image/png", filename=name)

    return app


async def _events(queue: JobQueue, job: Job, offset: int, interval: float,
                  poll: float = 0.05, keepalive: float = 15.0) -> AsyncIterator[str]:
    """Server-sent events for one job: snapshots while it changes, ending with the final one."""
    yield "retry: 2000\n\n"
    sent_version = -1
    last_sent = last_any = 0.0
    while True:
        now = time.monotonic()
        if job.version != sent_version and (now - last_sent >= interval or job.status in TERMINAL):
            snap = queue.snapshot(job, offset)
            offset = snap["loss_offset"] + len(snap["losses"])
            sent_version = snap["version"]
            last_sent = last_any = now
            yield f"event: update\ndata: {json.dumps(snap, allow_nan=False)}\n\n"
            if snap["status"] in TERMINAL:
                return
        elif now - last_any >= keepalive:
            last_any = now
            yield ": keep-alive\n\n"
        if queue.closed and job.status in TERMINAL and job.version == sent_version:
            return
        await asyncio.sleep(poll)
