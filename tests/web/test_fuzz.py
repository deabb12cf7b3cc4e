"""The API fuzzed from its own OpenAPI schema (schemathesis, in-process, a bounded number of examples).

Every route gets ``EXAMPLES`` generated requests (seeded by Hypothesis' ``derandomize``, so the
run is the same every time): none may answer 5xx, and every 4xx must carry a one-line
``{"detail": ...}`` that names no server path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from PIL import Image  # noqa: E402

from stylize.web import create_app  # noqa: E402
from stylize.web.jobs import ImageInput, Job  # noqa: E402

from .helpers import tiny_factory  # noqa: E402

EXAMPLES = 25


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("fuzz")
    app = create_app(backbone_factory=tiny_factory, devices=("cpu",), data_dir=data, token="fuzz-token",
                     allowed_hosts=("testserver",))  # the host name of schemathesis' ASGI client
    loaded = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers={"x-stylize-token": "fuzz-token"})
    loaded.data_dir = data
    loaded.job_id = stored_job(app.state.server.store)
    yield loaded
    app.state.server.queue.close()


def stored_job(store: Any) -> str:
    """A finished job in the results store, with losses and images: the routes' real work is fuzzed too."""
    job = Job(content=ImageInput("a.png", Path("a.png")), styles=[ImageInput("b.png", Path("b.png"))], options={})
    job.finish({"width": 8, "height": 8, "seconds": 0.1, "steps": 2, "stop_reason": "max_steps", "stop_text": "done"},
               {}, stopped=False, phase="done")
    store.save(job.record())
    store.add_losses(job.id, [[1, 1, 1.0, 0.5, 0.5], [2, 1, 0.9, 0.4, 0.5]])
    Image.new("RGB", (8, 8)).save(store.result_path(job.id))
    Image.new("RGB", (8, 8)).save(store.preview_path(job.id), format="JPEG")
    return job.id


def operations() -> list[str]:
    """Every route of the API (a test below checks that the schema has exactly these)."""
    return ["GET /api/options", "GET /api/examples/{name}", "POST /api/uploads", "POST /api/jobs", "GET /api/jobs",
            "GET /api/jobs/{job_id}", "POST /api/jobs/{job_id}/cancel", "GET /api/jobs/{job_id}/events",
            "GET /api/jobs/{job_id}/preview.jpg", "GET /api/jobs/{job_id}/result.png",
            "DELETE /api/jobs/{job_id}"]  # last: it deletes the stored job


def test_the_schema_lists_every_route(schema: Any) -> None:
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == set(operations())


@pytest.mark.parametrize("label", operations())
def test_no_route_answers_5xx_and_every_4xx_is_one_line(schema: Any, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    data_dir = str(schema.data_dir)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        calls = [case.call(headers={"x-stylize-token": "fuzz-token"})]
        if "job_id" in (case.path_parameters or {}):  # the same request for a job that exists
            case.path_parameters = {**case.path_parameters, "job_id": schema.job_id}
            calls.append(case.call(headers={"x-stylize-token": "fuzz-token"}))
        for response in calls:
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            if 400 <= response.status_code < 500:
                detail = response.json()["detail"]
                assert isinstance(detail, str) and detail and "\n" not in detail, response.text
                assert data_dir not in detail and "Traceback" not in detail, detail

    check()
