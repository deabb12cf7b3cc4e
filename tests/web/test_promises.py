"""Issue 14: bounded jobs, no cross-site or token-less use, results that survive a restart, bounded decoding."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from stylize.web.runner import public_network  # noqa: E402
from stylize.web.uploads import DecodeBudget, DecoderBusyError, decode_pixels  # noqa: E402

from .helpers import QUICK, Gate, finished, image_bytes, start_job, upload, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MakeClient = Callable[..., TestClient]


def refs(client: TestClient) -> tuple[dict[str, str], list[dict[str, str]]]:
    content = upload(client, image_bytes(96, 72, seed=1), "photo.png")
    style = upload(client, image_bytes(80, 80, seed=2, fmt="JPEG"), "painting.jpg")
    return {"upload": content["id"]}, [{"upload": style["id"]}]


def refused(client: TestClient, options: dict[str, Any], content: dict | None = None) -> str:
    body = {"content": content or {"example": "astronaut"}, "styles": [{"example": "the_scream"}], "options": options}
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400, response.text
    return response.json()["detail"]


# --------------------------------------------------------------------------- bounded work


@pytest.mark.parametrize(("options", "message"), [
    ({"size": 64, "max_memory": 1e-6, "tile_steps": 1000000000, "tol": 0}, "--max-memory: must be at least 0.05"),
    ({"size": 64, "tile_steps": 1000000000, "tol": 0}, "--tile-steps: must be at most 2000 here, got 1000000000"),
    ({"window": 10**9}, "--window: must be at most 2000 here"),
    ({"seed": 2**80}, "--seed: must be at most 4294967295 here"),
    ({"max_memory": 1e308}, "--max-memory: must be at most 1024 here, got 1e+308"),
    ({"steps": 0}, "--steps: must be at least 1, got 0"),
    ({"style_blend": [1, 1e300]}, "--style-blend: must be at most 1000000 here"),
    ({"style_blend": [1, 2]}, "--style-blend: 2 weights for 1 style images"),
    ({"size": 2048, "steps": 2000}, "this job needs"),
    ({"size": 2048, "tile_size": 64, "tile_overlap": 0}, "--max-memory/--tile-size:"),
    ({"size": 1024, "tile_size": 256, "tile_steps": 2000}, "this job needs"),
])
def test_work_multiplying_options_are_capped_at_submission(client: TestClient, options: dict, message: str) -> None:
    detail = refused(client, options)
    assert detail.startswith(message), detail
    assert "\n" not in detail and "Error" not in detail


def test_the_budget_names_the_limit_and_what_to_lower(make_client: MakeClient) -> None:
    client = make_client(max_work=1e6)
    assert refused(client, {"size": 256, "steps": 100}) == (
        "this job needs 5 million pixel-steps, over this server's limit of 1 million per job: lower --steps or --size")
    detail = refused(client, {"size": 256, "tile_size": 64, "tile_overlap": 0, "tile_steps": 500, "scales": "1"})
    assert detail.endswith("lower --tile-steps or --size"), detail
    assert start_job(client, {"example": "astronaut"}, [{"example": "the_scream"}], **QUICK)["work"] > 0
    assert client.get("/api/options").json()["limits"]["max_work"] == 1e6


def test_a_job_stops_at_the_time_limit_and_keeps_its_best_image(make_client: MakeClient) -> None:
    gate = Gate(pause=0.01)
    gate.event.set()
    client = make_client(max_seconds=0.5, backbone_factory=gate)
    content, styles = refs(client)
    job = start_job(client, content, styles, **{**QUICK, "steps": 2000})
    snap = wait_for(client, job["id"], finished, timeout=60)
    assert snap["status"] == "done"
    assert snap["result"]["stop_reason"] == "time_limit" and 1 <= snap["result"]["steps"] < 2000
    assert "time limit of 0.5 s" in snap["phase"]
    assert client.get(f"/api/jobs/{job['id']}/result.png").status_code == 200


# --------------------------------------------------------------------------- same origin and token


def test_other_sites_cannot_change_anything(client: TestClient) -> None:
    data = image_bytes(32, 32, seed=3)
    files = {"file": ("a.png", data, "image/png")}
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site"}, {"origin": "null"}):
        response = client.post("/api/uploads", files=files, headers=headers)
        assert response.status_code == 403 and response.json()["detail"] == "requests from other sites are refused"
    token = client.headers.pop("x-stylize-token")
    try:
        response = client.post("/api/uploads", files=files)
        assert response.status_code == 403 and "token" in response.json()["detail"]
        # The cookie the page sets is not enough for a change: a form on another site would send it.
        client.get("/")
        assert client.cookies
        assert client.post("/api/uploads", files=files).status_code == 403
        assert client.get("/api/jobs").status_code == 200  # ... but it lets the page's images and events load
    finally:
        client.headers["x-stylize-token"] = token
    response = client.post("/api/uploads", files=files, headers={"origin": "http://127.0.0.1",
                                                                  "sec-fetch-site": "same-origin"})
    assert response.status_code == 201
    assert client.get("/api/jobs", headers={"sec-fetch-site": "cross-site"}).status_code == 403


def test_the_page_carries_the_token(client: TestClient) -> None:
    token = client.app.state.server.token
    page = client.get("/", headers={"x-stylize-token": ""})
    assert f'<meta name="stylize-token" content="{token}">' in page.text
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=Strict" in page.headers["set-cookie"]


def test_beyond_loopback_every_route_needs_the_token(make_client: MakeClient) -> None:
    client = make_client(token_everywhere=True, token="s3cret-token", allowed_hosts=("127.0.0.1", "box.lan"))
    del client.headers["x-stylize-token"]
    for path in ("/", "/static/app.js", "/api/options", "/api/examples/astronaut", "/api/openapi.json"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["detail"].startswith("this server needs its token")
    response = client.get("/?token=s3cret-token&x=1", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/?x=1"  # the token leaves the URL
    assert client.get("/").status_code == 200  # now with the cookie
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/?token=wrong", headers={"cookie": ""}, follow_redirects=False).status_code == 403
    # The Host check stays on.
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"host": "box.lan:8000", "x-stylize-token": "s3cret-token"}).status_code == 200


# --------------------------------------------------------------------------- results that last


def test_a_job_survives_a_restart_and_can_be_deleted(make_client: MakeClient, tmp_path: Path) -> None:
    first = make_client(data_dir=tmp_path)
    content, styles = refs(first)
    job = start_job(first, content, styles, **{**QUICK, "steps": 5})
    before = wait_for(first, job["id"], finished)
    assert before["status"] == "done"
    png = first.get(f"/api/jobs/{job['id']}/result.png").content
    first.__exit__(None, None, None)

    second = make_client(data_dir=tmp_path)
    history = second.get("/api/jobs").json()
    assert [j["id"] for j in history["jobs"]] == [job["id"]] and history["total"] == 1
    after = second.get(f"/api/jobs/{job['id']}").json()
    assert after["losses"] == before["losses"] and len(after["losses"]) == 5
    assert after["result"] == before["result"] and after["settings"]["size"] == 64
    assert second.get(f"/api/jobs/{job['id']}/result.png").content == png
    assert second.get(f"/api/jobs/{job['id']}/preview.jpg").status_code == 200
    assert second.get(f"/api/jobs/{job['id']}?offset=3").json()["losses"] == before["losses"][3:]

    assert second.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert second.get(f"/api/jobs/{job['id']}").status_code == 404
    assert second.get("/api/jobs").json()["jobs"] == []
    assert list((tmp_path / "results").iterdir()) == []


def test_a_job_running_at_shutdown_is_interrupted_with_its_best_image(make_client: MakeClient, tmp_path: Path) -> None:
    gate = Gate(pause=0.02)
    gate.event.set()
    first = make_client(data_dir=tmp_path, backbone_factory=gate, checkpoint_interval=0.0)
    content, styles = refs(first)
    running = start_job(first, content, styles, **{**QUICK, "steps": 2000})
    waiting = start_job(first, content, styles, **QUICK)
    wait_for(first, running["id"], lambda s: s["has_result"])
    first.__exit__(None, None, None)

    second = make_client(data_dir=tmp_path)
    snap = second.get(f"/api/jobs/{running['id']}").json()
    assert snap["status"] == "interrupted" and snap["has_result"]
    assert "the best image so far was kept" in snap["phase"]
    assert 1 <= snap["result"]["steps"] < 2000 and len(snap["losses"]) == snap["result"]["steps"]
    with Image.open(io.BytesIO(second.get(f"/api/jobs/{running['id']}/result.png").content)) as image:
        assert image.size == (64, 48)
    snap = second.get(f"/api/jobs/{waiting['id']}").json()
    assert snap["status"] == "interrupted" and not snap["has_result"]


SERVER_SCRIPT = """
import sys, uvicorn
from stylize.web import create_app
from tests.web.helpers import Slow

app = create_app(backbone_factory=Slow(0.02), devices=("cpu",), data_dir=sys.argv[1], token="t0ken",
                 checkpoint_interval=0.0, preview_interval=0.0)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def _call(url: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
    import json

    request = urllib.request.Request(url, data=body, headers={"x-stylize-token": "t0ken", "content-type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux; [] elsewhere)."""
    try:
        return [int(c) for task in os.listdir(f"/proc/{pid}/task")
                for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def test_a_killed_server_s_job_is_interrupted_after_a_restart(make_client: MakeClient, tmp_path: Path) -> None:
    import json

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = tmp_path.parent / f"{tmp_path.name}-serve.py"  # a script without a __main__ guard: it must not run
    script.write_text(SERVER_SCRIPT)                        # again in the job process (spawn would)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(port)], cwd=REPO, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                _call(url + "/api/options")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
                time.sleep(0.1)
        body = {"content": {"example": "astronaut"}, "styles": [{"example": "the_scream"}],
                "options": {**QUICK, "steps": 2000}}
        job = _call(url + "/api/jobs", json.dumps(body).encode())
        while not _call(f"{url}/api/jobs/{job['id']}")["has_result"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    if sys.platform == "linux":  # the job process goes with its server (it would run its 2000 steps for a minute)
        assert workers, "the job ran in no child process"
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "the job process outlived its killed server"
            time.sleep(0.05)
    (tmp_path / "tmp" / "left-over-upload").write_bytes(b"x")
    (tmp_path / "results" / f".{job['id']}.png.abc.tmp").write_bytes(b"half")

    client = make_client(data_dir=tmp_path)
    snap = client.get(f"/api/jobs/{job['id']}").json()
    assert snap["status"] == "interrupted" and snap["has_result"], snap["phase"]
    assert client.get(f"/api/jobs/{job['id']}/result.png").content[:4] == b"\x89PNG"
    assert [j["status"] for j in client.get("/api/jobs").json()["jobs"]] == ["interrupted"]
    assert not (tmp_path / "tmp" / "left-over-upload").exists()  # temp files cleaned at start
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [f"{job['id']}.jpg", f"{job['id']}.png"]


def test_old_jobs_are_pruned_only_beyond_the_limit(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(data_dir=tmp_path, keep_jobs=2)
    ids = []
    for _ in range(3):
        job = start_job(client, {"example": "astronaut"}, [{"example": "the_scream"}], **{**QUICK, "steps": 2})
        wait_for(client, job["id"], finished)
        ids.append(job["id"])
        time.sleep(0.01)
    history = client.get("/api/jobs").json()
    assert [j["id"] for j in history["jobs"]] == ids[:0:-1] and history["keep_jobs"] == 2
    assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
    assert not (tmp_path / "results" / f"{ids[0]}.png").exists()
    page = client.get(f"/api/jobs?limit=1&before={history['jobs'][0]['created']}").json()
    assert [j["id"] for j in page["jobs"]] == [ids[1]]


def test_a_running_job_cannot_be_deleted(make_client: MakeClient) -> None:
    gate = Gate()
    client = make_client(backbone_factory=gate)
    job = start_job(client, {"example": "astronaut"}, [{"example": "the_scream"}], **QUICK)
    assert gate.entered.wait(30)
    response = client.delete(f"/api/jobs/{job['id']}")
    assert response.status_code == 409 and response.json()["detail"] == "this job has not ended; cancel it first"
    gate.event.set()
    wait_for(client, job["id"], finished)
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204


# --------------------------------------------------------------------------- no server paths


def test_the_network_is_described_without_the_server_s_paths() -> None:
    assert public_network("vgg16 (caffe weights, offline from /root/.cache/torch/hub/checkpoints/v.pth)") == \
        "vgg16 (caffe weights, offline)"
    assert public_network("tiny random vgg19 (seed 0)") == "tiny random vgg19 (seed 0)"


def test_no_response_names_a_server_path(client: TestClient) -> None:
    content, styles = refs(client)
    job = start_job(client, content, styles, **{**QUICK, "steps": 2})
    snap = wait_for(client, job["id"], finished)
    text = client.get(f"/api/jobs/{job['id']}").text + client.get("/api/jobs").text
    data_dir = str(client.app.state.server.store.folder)
    assert snap["status"] == "done" and data_dir not in text and str(Path.home()) not in text
    assert "/tmp" not in text and "site-packages" not in text


# --------------------------------------------------------------------------- bounded decoding


def test_decodes_wait_for_each_other_within_the_budget() -> None:
    budget = DecodeBudget(100, timeout=30)  # long: on a loaded machine the wait below can take a while
    events = []

    def second() -> None:
        with budget.hold(60):
            events.append("second decodes")

    with budget.hold(70):
        assert budget.free == 30
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.05)
        events.append("first done")
    thread.join(30)
    assert not thread.is_alive()
    assert events == ["first done", "second decodes"]  # the second waited for the first
    short = DecodeBudget(100, timeout=0.2)
    with short.hold(70), pytest.raises(DecoderBusyError), short.hold(60):  # waits at most the timeout
        pass
    with budget.hold(10**9):  # one image larger than the budget gets all of it
        assert budget.free == 0
    assert budget.free == 100


def test_jpegs_are_decoded_at_the_scale_they_are_used(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(image_bytes(2000, 1500, seed=4, fmt="JPEG"))
    assert decode_pixels(path) == 3_000_000
    assert decode_pixels(path, 250) == 250 * 188  # 1/8 scale
    png = tmp_path / "big.png"
    png.write_bytes(image_bytes(400, 300, seed=4))
    assert decode_pixels(png, 50) == 120_000  # other formats cannot skip detail


def test_style_images_are_loaded_at_the_content_s_area(make_client: MakeClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import stylize.web.runner as runner

    loaded = []
    real = runner.load_image
    monkeypatch.setattr(runner, "load_image", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    client = make_client()
    content = upload(client, image_bytes(96, 72, seed=1))
    style = upload(client, image_bytes(1600, 1200, seed=2, fmt="JPEG"), "huge.jpg")
    job = start_job(client, {"upload": content["id"]}, [{"upload": style["id"]}], **{**QUICK, "steps": 1})
    assert wait_for(client, job["id"], finished)["status"] == "done"
    # The style is used at the area of the 64 x 48 output: decoded at 1/8 scale (200 x 150), not 1600 x 1200.
    assert [im.size for im in loaded] == [(96, 72), (200, 150)]
