"""The FastAPI app: the page, its JSON API and the live event stream.

API (all JSON unless noted; errors are ``{"detail": "one line"}``; the schema is at
``/api/openapi.json``):

* ``GET /api/options``: the options form (from :class:`stylize.Options`), limits, examples.
* ``GET /api/examples/{name}``: an example image (JPEG), by name from a fixed list.
* ``POST /api/uploads``: multipart ``file``; checked as an image; answers ``{id, label, width, height}``.
* ``POST /api/jobs``: ``{content: {upload: id} | {example: name}, styles: [...], options: {...}}``.
* ``GET /api/jobs?limit=N&before=T``: the history, newest first, across tabs and server restarts.
* ``GET /api/jobs/{id}``: a snapshot (status, queue position, progress, losses, result).
* ``GET /api/jobs/{id}/events?offset=N``: server-sent events, one ``update`` snapshot at most every
  ``event_interval`` seconds while something changes, with the loss points from ``offset`` on;
  the stream ends after the job's final snapshot.
* ``POST /api/jobs/{id}/cancel``; ``DELETE /api/jobs/{id}``; ``GET /api/jobs/{id}/preview.jpg``;
  ``GET /api/jobs/{id}/result.png``.

Nothing a client sends is used as a path: uploads and results are stored under uuid4 names the
server chooses, examples are looked up by name, jobs by id. Who may ask is decided by
:class:`stylize.web.guards.AccessGuard` (same origin and the server's token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from stylize.errors import StylizeError
from stylize.imageio import DEFAULT_MAX_PIXELS
from stylize.pyramid import MAX_SCALES
from stylize.web import routes_inputs, routes_jobs
from stylize.web.budget import WorkLimits
from stylize.web.form import FormLimits
from stylize.web.guards import LOOPBACK_HOSTS, LOOPBACK_PUBLIC, AccessGuard, BodyLimit, HostCheck, SecurityHeaders
from stylize.web.jobs import Job, JobQueue
from stylize.web.runner import BackboneFactory, JobRunner
from stylize.web.server import Server
from stylize.web.store import ResultStore, default_data_dir
from stylize.web.uploads import DecodeBudget, UploadStore

log = logging.getLogger("stylize.web")


@dataclass(frozen=True)
class Limits:
    """What one visitor may ask of the server."""

    max_upload_bytes: int = 25 * 2**20
    max_upload_pixels: int = 50_000_000
    max_size: int = 2048
    max_steps: int = 2000  # also --tile-steps and --window
    max_scales: int = MAX_SCALES  # --scales auto visits 128 px ... --size
    max_tiles: int = 64  # per scale
    max_work: float = 400e6  # pixel-steps per job (a default 2048 px run, tiled: 230 million)
    max_seconds: float = 1800.0  # per job; then it stops and keeps its best image
    max_styles: int = routes_jobs.MAX_STYLES
    max_waiting: int = 20
    decode_pixels: int = 50_000_000  # pixels all image decoders of the server may hold at once


def create_app(
    *,
    backbone_factory: BackboneFactory | None = None,
    limits: Limits = Limits(),
    data_dir: str | Path | None = None,
    keep_jobs: int = 1000,
    devices: Iterable[str] = ("auto",),
    preview_interval: float = 0.5,
    checkpoint_interval: float = 10.0,
    event_interval: float = 0.25,
    allowed_hosts: Iterable[str] | None = LOOPBACK_HOSTS,
    token: str | None = None,
    token_everywhere: bool = False,
    allow_download: bool = True,
    job_nice: int = 10,
) -> FastAPI:
    """Build the web app.

    Args:
        backbone_factory: ``Options -> Backbone``, called in the job process (so it must pickle: a
            module-level function or an instance of a module-level class); default: load the real
            network once and keep it (tests pass one that returns :func:`stylize.backbone.tiny_backbone`).
        limits: what a visitor may ask for (:class:`Limits`).
        data_dir: the results folder (database, images; default :func:`default_data_dir`).
        keep_jobs: most jobs kept; the oldest finished ones are deleted beyond it.
        devices: one worker (and so one running job at a time) per device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        preview_interval, checkpoint_interval, event_interval: seconds between preview images of a
            running job, between saves of its best image and losses, and between live updates to the page.
        allowed_hosts: host names the Host header may carry (None: any; default: loopback names).
        token: the server's secret (default: a new random one); ``token_everywhere``: required for
            every route, the page included (a server reachable from other machines).
        allow_download: whether the default network loader may download official weights.
        job_nice: how much lower the CPU priority of the job processes is than the server's (nice
            increment; 0 keeps it equal), so requests are answered while a job runs.
    """
    if limits.max_upload_pixels > DEFAULT_MAX_PIXELS:
        raise ValueError(f"max_upload_pixels may be at most {DEFAULT_MAX_PIXELS}")
    token = token or secrets.token_urlsafe(24)
    store = ResultStore(data_dir if data_dir is not None else default_data_dir(), keep_jobs=keep_jobs)
    decode = DecodeBudget(max(limits.decode_pixels, 1))
    uploads = UploadStore(store.tmp / "uploads", max_bytes=limits.max_upload_bytes,
                          max_pixels=limits.max_upload_pixels, decode=decode)
    runner = JobRunner(store, backbone_factory=backbone_factory, preview_interval=preview_interval,
                       checkpoint_interval=checkpoint_interval, max_seconds=limits.max_seconds,
                       max_pixels=limits.max_upload_pixels, decode=decode, allow_download=allow_download,
                       nice=job_nice)

    def keep(job: Job) -> None:
        store.save(job.record())
        store.add_losses(job.id, job.losses)
        store.prune()

    server = Server(
        queue=JobQueue(runner, devices=tuple(devices), max_waiting=limits.max_waiting, on_update=keep),
        store=store, uploads=uploads,
        form_limits=FormLimits(max_size=limits.max_size, max_steps=limits.max_steps),
        work_limits=WorkLimits(max_scales=limits.max_scales, max_tiles=limits.max_tiles,
                               max_work=limits.max_work, max_styles=limits.max_styles),
        limits={**limits.__dict__, "keep_jobs": keep_jobs},
        token=token, event_interval=event_interval, page=routes_inputs.render_page(token),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.queue.reopen()
        yield
        await asyncio.to_thread(server.queue.close)
        await asyncio.to_thread(runner.close)
        store.close()

    app = FastAPI(title="stylize", version="1", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.server = server
    _add_middleware(app, limits, allowed_hosts, server.token, token_everywhere)
    _add_error_handlers(app)
    app.include_router(routes_inputs.router)
    app.include_router(routes_jobs.router)
    app.mount("/static", StaticFiles(directory=routes_inputs.STATIC_DIR), name="static")
    return app


def _add_middleware(app: FastAPI, limits: Limits, allowed_hosts: Iterable[str] | None, token: str,
                    token_everywhere: bool) -> None:
    # Outermost last: host check first, then the token, then the size limit, then headers on every answer.
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes + 2**20)  # room for the multipart framing
    app.add_middleware(AccessGuard, token=token, public=() if token_everywhere else LOOPBACK_PUBLIC)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed_hosts=tuple(allowed_hosts))


def _one_line(text: object, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit] or "error"


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is ``{"detail": "one line"}``; an unexpected one says nothing of the server's insides."""

    @app.exception_handler(StylizeError)
    async def stylize_error(request: Request, exc: StylizeError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"detail": _one_line(f"{where or 'request'}: {first.get('msg', 'invalid')}")},
                            status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error (the server's log has the details)"}, status_code=500)
