"""The job runs in its own process, at a lower priority, loading its network once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from .helpers import QUICK, crash_factory, finished, pid_factory, start_job, wait_for  # noqa: E402

MakeClient = Callable[..., TestClient]
ASTRONAUT, SCREAM = {"example": "astronaut"}, [{"example": "the_scream"}]


def worker_of(snap: dict) -> tuple[int, int]:
    """(pid, nice) of the process that made the job's network (``pid_factory``'s description)."""
    _, pid, _, nice = snap["network"].strip("tiny ()").replace(",", "").split()
    return int(pid), int(nice)


def test_jobs_run_in_one_lower_priority_process_not_the_server_s(make_client: MakeClient) -> None:
    client = make_client(backbone_factory=pid_factory, job_nice=5)
    snaps = [wait_for(client, start_job(client, ASTRONAUT, SCREAM, **{**QUICK, "steps": 2})["id"], finished)
             for _ in range(2)]
    assert [s["status"] for s in snaps] == ["done", "done"], snaps[0]["error"]
    (pid, nice), again = worker_of(snaps[0]), worker_of(snaps[1])
    assert pid != os.getpid() and again == (pid, nice)  # the same process serves every job of the device
    if sys.platform == "linux" and os.nice(0) < 19:
        assert nice == min(19, os.nice(0) + 5)
    assert client.app.state.server.queue._run.process("cpu").pid == pid


def test_a_crashed_job_process_fails_its_job_and_the_next_job_runs(make_client: MakeClient) -> None:
    client = make_client(backbone_factory=crash_factory)
    crashed = start_job(client, ASTRONAUT, SCREAM, **QUICK, pooling="average")  # its process exits mid-job
    good = start_job(client, ASTRONAUT, SCREAM, **QUICK)
    snap = wait_for(client, crashed["id"], finished)
    assert snap["status"] == "failed"
    assert snap["error"] == "internal error: the job failed (the server's log has the details)"
    assert wait_for(client, good["id"], finished)["status"] == "done"
