"""What the routes of the web app share: the queue, the results store, the uploads and the limits.

A job is *live* while this server runs it (a :class:`~stylize.web.jobs.Job` in the queue) and
*stored* otherwise (a record in the :class:`~stylize.web.store.ResultStore`); :class:`Server`
answers for both the same way, so the page cannot tell a job of this run from one of an earlier
run, except that only live jobs can still change.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from stylize.errors import InputError
from stylize.web.budget import WorkLimits
from stylize.web.examples import EXAMPLES
from stylize.web.form import FormLimits
from stylize.web.jobs import TERMINAL, ImageInput, Job, JobQueue, encode, snapshot
from stylize.web.store import ResultStore
from stylize.web.uploads import UploadStore, image_size, parse_id


@dataclass
class Server:
    queue: JobQueue
    store: ResultStore
    uploads: UploadStore
    form_limits: FormLimits
    work_limits: WorkLimits
    limits: dict[str, Any]  # for GET /api/options
    token: str
    event_interval: float
    page: str  # the page's HTML, with the token
    example_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Encoded snapshots of stored jobs: (job id, offset) -> (the store's generation, JSON).
    stored_json: OrderedDict[tuple[str, int], tuple[int, bytes]] = field(default_factory=OrderedDict)

    def resolve(self, upload: str | None, example: str | None, role: str) -> ImageInput:
        """The image a job names: an upload by id or an example by name (InputError otherwise)."""
        if (upload is None) == (example is None):
            raise InputError(None, f"{role}: give either an upload id or an example name")
        if upload is not None:
            stored = self.uploads.get(upload)
            if stored is None:
                raise InputError(None, f"{role}: no such upload (it may have expired; upload it again)")
            return ImageInput(stored.label, stored.path, (stored.width, stored.height))
        found = EXAMPLES.get(example or "")
        if found is None or not found.path.is_file():
            raise InputError(None, f"{role}: no example named {example!r}")
        if found.name not in self.example_sizes:
            self.example_sizes[found.name] = image_size(found.path) or (1, 1)
        return ImageInput(found.name, found.path, self.example_sizes[found.name])

    def key(self, job_id: str) -> str:
        key = parse_id(job_id)
        if key is None:
            raise HTTPException(404, "no such job")
        return key

    def live(self, job_id: str) -> Job | None:
        return self.queue.get(self.key(job_id))

    def record(self, job_id: str) -> dict[str, Any]:
        record = self.store.get(self.key(job_id))
        if record is None:
            raise HTTPException(404, "no such job")
        return record

    def snapshot(self, job_id: str, offset: int = 0) -> dict[str, Any]:
        job = self.live(job_id)
        if job is not None:
            return self.queue.snapshot(job, offset)
        record = self.record(job_id)
        offset = min(max(offset, 0), self.store.count_losses(record["id"]))
        return snapshot(record, self.store.losses(record["id"], offset), loss_offset=offset)

    def snapshot_json(self, job_id: str, offset: int = 0) -> bytes:
        """:meth:`snapshot` as JSON: of a live job from memory (encoded once per change), of a stored
        one from the database only when it changed since the last time it was asked for."""
        job = self.live(job_id)
        if job is not None:
            return self.queue.snapshot_json(job, offset)
        key = (self.key(job_id), offset)
        generation = self.store.generation
        cached = self.stored_json.get(key)
        if cached is not None and cached[0] == generation:
            self.stored_json.move_to_end(key)
            return cached[1]
        data = encode(self.snapshot(job_id, offset))
        self.stored_json[key] = (generation, data)
        while len(self.stored_json) > 64:
            self.stored_json.popitem(last=False)
        return data

    def history(self, limit: int, before: float | None) -> list[dict[str, Any]]:
        """The newest jobs first, without their losses."""
        items = []
        for record in self.store.history(limit=limit, before=before):
            job = self.queue.get(record["id"])
            items.append(self.queue.snapshot(job, 2**62) if job is not None else
                         snapshot(record, [], loss_offset=0))
        return items

    def delete(self, job_id: str) -> None:
        job = self.live(job_id)
        if job is not None and job.status not in TERMINAL:
            raise HTTPException(409, "this job has not ended; cancel it first")
        if not self.store.delete(self.key(job_id)):
            raise HTTPException(404, "no such job")

    def image(self, job_id: str, kind: str) -> Path | bytes:
        """A job's result PNG (``kind`` "result") or preview JPEG ("preview"), or 404."""
        job = self.live(job_id)
        if kind == "preview" and job is not None and job.preview is not None:
            return job.preview
        record = None if job is not None else self.record(job_id)
        key = self.key(job_id)
        path = self.store.result_path(key) if kind == "result" else self.store.preview_path(key)
        has_result = (job.result if job is not None else record["result"]) is not None  # type: ignore[index]
        if not path.is_file() or (kind == "result" and not has_result):
            raise HTTPException(404, "this job has no result (yet)" if kind == "result" else "no preview yet")
        return path


async def get_server(request: Request) -> Server:
    """FastAPI dependency: the app's :class:`Server` (async: a plain function would run in a thread)."""
    return request.app.state.server
