"""Routes of jobs: start, follow (snapshots and server-sent events), cancel, history, delete, images."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from stylize.web.budget import check_work
from stylize.web.form import parse_options
from stylize.web.jobs import TERMINAL, Job, QueueFullError
from stylize.web.server import Server, get_server

MAX_STYLES = 8

router = APIRouter(prefix="/api/jobs")
ServerDep = Annotated[Server, Depends(get_server)]
Offset = Annotated[int, Query(ge=0, le=2**62)]


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


@router.post("", status_code=201)
async def create_job(request: JobRequest, server: ServerDep) -> dict[str, Any]:
    """Start a job (it waits in the queue); refused when an option or the planned work is over a limit."""
    content = server.resolve(request.content.upload, request.content.example, "content image")
    styles = [server.resolve(r.upload, r.example, f"style image {i + 1}") for i, r in enumerate(request.styles)]
    options = parse_options(request.options, server.form_limits)
    work = check_work(content.size, options, len(styles), server.work_limits)
    job = Job(content=content, styles=styles, options=options, work=work)
    try:
        server.queue.submit(job)
    except QueueFullError as exc:
        raise HTTPException(429, str(exc)) from None
    return server.queue.snapshot(job)


@router.get("")
async def history(server: ServerDep, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  before: Annotated[float | None, Query(ge=0, le=1e12)] = None) -> dict[str, Any]:
    """Jobs of this server and earlier runs, newest first (``before``: created before that time)."""
    return {"jobs": server.history(limit, before), "total": server.store.total(),
            "keep_jobs": server.store.keep_jobs}


@router.get("/{job_id}", response_class=JSONResponse)
async def get_job(job_id: str, server: ServerDep, offset: Offset = 0) -> Response:
    """A snapshot: status, queue position, progress, the losses from ``offset`` on, the result.

    (The route pages poll most: it sends the JSON encoded once per change of the job, from memory.)"""
    return Response(server.snapshot_json(job_id, offset), media_type="application/json")


@router.delete("/{job_id}", status_code=204)
async def delete_job(job_id: str, server: ServerDep) -> Response:
    """Delete an ended job, its losses and its images."""
    server.delete(job_id)
    return Response(status_code=204)


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, server: ServerDep) -> dict[str, Any]:
    """A waiting job ends at once; a running one after its current step, keeping its best image."""
    job = server.live(job_id)
    if job is None:
        return server.snapshot(job_id, 2**62)
    server.queue.cancel(job)
    return server.queue.snapshot(job, len(job.losses))


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_events(job_id: str, server: ServerDep, offset: Offset = 0) -> StreamingResponse:
    """Server-sent events: an ``update`` snapshot at most every ``event_interval`` seconds while the
    job changes, with the loss points from ``offset`` on; the stream ends after the final one."""
    job = server.live(job_id)
    stream = (_events(server, job, offset) if job is not None
              else _final(server.snapshot(job_id, offset)))
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/preview.jpg", response_class=Response)
async def job_preview(job_id: str, server: ServerDep) -> Response:
    """The latest preview of a job (JPEG)."""
    found = server.image(job_id, "preview")
    if isinstance(found, bytes):
        return Response(found, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})
    return FileResponse(found, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get("/{job_id}/result.png", response_class=FileResponse)
async def job_result(job_id: str, server: ServerDep) -> FileResponse:
    """The result of a job (or its best image so far), as a PNG download."""
    path = server.image(job_id, "result")
    content = server.snapshot(job_id, 2**62)["content"]
    name = f"stylized_{content.rsplit('.', 1)[0]}_{server.key(job_id)[:8]}.png"
    return FileResponse(path, media_type="image/png", filename=name)


def _event(snap: dict[str, Any]) -> str:
    return f"event: update\ndata: {json.dumps(snap, allow_nan=False)}\n\n"


async def _final(snap: dict[str, Any]) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    yield _event(snap)


async def _events(server: Server, job: Job, offset: int, poll: float = 0.05,
                  keepalive: float = 15.0) -> AsyncIterator[str]:
    """Server-sent events for one live job: snapshots while it changes, ending with the final one."""
    yield "retry: 2000\n\n"
    queue, interval = server.queue, server.event_interval
    sent_version = -1
    last_sent = last_any = 0.0
    while True:
        now = time.monotonic()
        if job.version != sent_version and (now - last_sent >= interval or job.status in TERMINAL):
            snap = queue.snapshot(job, offset)
            offset = snap["loss_offset"] + len(snap["losses"])
            sent_version = snap["version"]
            last_sent = last_any = now
            yield _event(snap)
            if snap["status"] in TERMINAL:
                return
        elif now - last_any >= keepalive:
            last_any = now
            yield ": keep-alive\n\n"
        if queue.closed and job.status in TERMINAL and job.version == sent_version:
            return
        await asyncio.sleep(poll)
