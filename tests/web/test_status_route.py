"""The status route, the one pages poll most: answered from memory, each change encoded once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from stylize.web.server import get_server  # noqa: E402

from .helpers import QUICK, Gate, finished, start_job, wait_for  # noqa: E402

MakeClient = Callable[..., TestClient]
ASTRONAUT, SCREAM = {"example": "astronaut"}, [{"example": "the_scream"}]


def test_the_status_of_a_live_job_comes_from_memory_encoded_once_per_change(make_client: MakeClient,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate()
    client = make_client(backbone_factory=gate)
    job = start_job(client, ASTRONAUT, SCREAM, **QUICK)
    assert gate.entered.wait(60)
    server = client.app.state.server
    encodes = []
    monkeypatch.setattr(server.store, "get", lambda *a: pytest.fail("the status of a live job read the database"))
    live = server.live(job["id"])
    real_snapshot = type(live).snapshot
    monkeypatch.setattr(type(live), "snapshot", lambda self, **k: encodes.append(1) or real_snapshot(self, **k))
    first = client.get(f"/api/jobs/{job['id']}")
    assert first.status_code == 200 and first.json()["status"] == "running"
    assert all(client.get(f"/api/jobs/{job['id']}").content == first.content for _ in range(5))
    assert len(encodes) == 1
    live.set_phase("something changed")
    assert client.get(f"/api/jobs/{job['id']}").json()["phase"] == "something changed" and len(encodes) == 2
    monkeypatch.undo()
    gate.event.set()
    assert wait_for(client, job["id"], finished)["status"] == "done"


def test_the_status_of_a_stored_job_is_read_again_only_after_a_change(client: TestClient,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    job = start_job(client, ASTRONAUT, SCREAM, **{**QUICK, "steps": 3})
    done = wait_for(client, job["id"], finished)
    store = client.app.state.server.store
    reads = []
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda job_id: reads.append(job_id) or real_get(job_id))
    assert all(client.get(f"/api/jobs/{job['id']}").json() == done for _ in range(5))
    assert len(reads) <= 1
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404  # a change: read again


def test_routes_get_the_server_without_a_thread_hop() -> None:
    # A plain-function dependency runs in FastAPI's thread pool: a thread switch for every request.
    assert asyncio.iscoroutinefunction(get_server)
