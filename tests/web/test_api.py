"""The web app's API with FastAPI's TestClient and the tiny network."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from stylize.options import Options  # noqa: E402
from stylize.web.form import parse_options  # noqa: E402

from .helpers import (  # noqa: E402
    QUICK,
    CountingCache,
    Gate,
    finished,
    flaky_factory,
    image_bytes,
    start_job,
    upload,
    wait_for,
)

STATIC = Path(__file__).resolve().parents[2] / "stylize" / "web" / "static"


def read_events(client: TestClient, job_id: str, offset: int = 0,
                on_first: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Every ``update`` event of the job's stream (it ends after the final one).

    ``on_first`` is called once the first event has arrived (the stream is then connected).
    """
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events?offset={offset}") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "update":
                events.append(json.loads(line[6:]))
                if on_first is not None and len(events) == 1:
                    on_first()
    return events


def two_uploads(client: TestClient) -> tuple[dict[str, str], list[dict[str, str]]]:
    content = upload(client, image_bytes(96, 72, seed=1), "my photo.png")
    style = upload(client, image_bytes(80, 80, seed=2, fmt="JPEG"), "painting.jpg")
    return {"upload": content["id"]}, [{"upload": style["id"]}]


# --------------------------------------------------------------------------- page and options


def test_page_and_static_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>stylize</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_static_files_load_nothing_from_elsewhere() -> None:
    """No CDN: every file of the page is local, and no file refers to another site."""
    files = list(STATIC.iterdir())
    assert {"index.html", "app.js", "style.css"} <= {f.name for f in files}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)\s*=\s*[\"'](https?:)?//", text), path.name
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text), path.name
        assert "import(" not in text and "@import" not in text, path.name


def test_options_come_from_the_options_dataclass(client: TestClient) -> None:
    data = client.get("/api/options").json()
    fields = {f["name"]: f for f in data["fields"]}
    assert fields["size"]["default"] == Options().size and fields["size"]["basic"]
    assert fields["size"]["max"] == data["limits"]["max_size"]
    assert fields["model"]["choices"] == ["vgg16", "vgg19"]
    assert fields["init"]["choices"] == ["content", "noise"]  # the FILE alternative is not offered
    for name in ("device", "weights", "max_pixels", "allow_download"):
        assert name not in fields
    # Every offered option is a real one, and every real one is offered unless the server decides it.
    real = set(Options.__dataclass_fields__)
    assert set(fields) <= real
    assert {e["name"] for e in data["examples"]} >= {"eiffel_tower", "starry_night"}


def test_new_options_appear_but_file_options_never() -> None:
    from stylize.web.form import form_fields

    offered = {f.name for f in form_fields()}
    for f in Options.__dataclass_fields__.values():
        metavar = f.metadata.get("metavar") or ""
        if f.name in offered:
            assert "FILE" not in metavar or "|" in metavar
    if "preserve_color" in Options.__dataclass_fields__:
        assert "preserve_color" in offered
    if "mask" in Options.__dataclass_fields__:
        assert "mask" not in offered  # a path on the server


def test_examples_are_images_addressed_by_name(client: TestClient) -> None:
    data = client.get("/api/options").json()
    for example in data["examples"]:
        response = client.get(example["url"])
        assert response.status_code == 200
        with Image.open(io.BytesIO(response.content)) as image:
            assert max(image.size) <= 512


# --------------------------------------------------------------------------- uploads


def test_upload_is_checked_and_named(client: TestClient) -> None:
    data = upload(client, image_bytes(96, 72, seed=1), "../../etc/My Photo!.png")
    assert (data["width"], data["height"]) == (96, 72)
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["label"] == "My_Photo_.png"  # the client's name, cleaned, only as a label


def test_non_image_upload_is_refused_and_not_kept(client: TestClient) -> None:
    folder = client.app.state.server.uploads.folder
    response = client.post("/api/uploads", files={"file": ("notes.png", b"hello, I am text", "image/png")})
    assert response.status_code == 400
    assert response.json()["detail"] == "notes.png: image: not an image Pillow can read"
    truncated = image_bytes(64, 64, seed=3, fmt="JPEG")[:300]
    response = client.post("/api/uploads", files={"file": ("cut.jpg", truncated, "image/jpeg")})
    assert response.status_code == 400 and "cut.jpg" in response.json()["detail"]
    assert list(folder.iterdir()) == []


def test_upload_over_the_size_limit_is_413(make_client) -> None:  # noqa: ANN001
    client = make_client(max_upload_bytes=4000)
    big = image_bytes(256, 256, seed=4)
    assert len(big) > 4000
    response = client.post("/api/uploads", files={"file": ("big.png", big, "image/png")})
    assert response.status_code == 413
    assert "upload limit" in response.json()["detail"]
    # A body far over the limit is refused from its Content-Length, before it is read.
    response = client.post("/api/uploads", content=b"x" * (2**20 + 8000),
                           headers={"content-type": "application/octet-stream"})
    assert response.status_code == 413
    # Without a Content-Length (chunked), reading stops at the limit.

    def chunked() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(40):
            yield b"x" * 65536

    response = client.post("/api/uploads", content=chunked(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    assert "larger than this server accepts" in response.json()["detail"]
    assert list(client.app.state.server.uploads.folder.iterdir()) == []


def test_upload_over_the_pixel_limit_is_400(make_client) -> None:  # noqa: ANN001
    client = make_client(max_upload_pixels=64 * 64)
    response = client.post("/api/uploads", files={"file": ("wide.png", image_bytes(65, 64, seed=5), "image/png")})
    assert response.status_code == 400
    assert response.json()["detail"] == "wide.png: image is 65 x 64 = 4160 pixels, over the limit of 4096"
    assert upload(client, image_bytes(64, 64, seed=5))["width"] == 64


# --------------------------------------------------------------------------- jobs


def test_job_streams_progress_and_previews_then_downloads(make_client: Callable[..., TestClient]) -> None:
    gate = Gate(pause=0.08)
    client = make_client(backbone_factory=gate)
    content, styles = two_uploads(client)
    job = start_job(client, content, styles, **QUICK)
    assert job["status"] in ("queued", "running") and job["title"] == "my_photo.png × painting.jpg"
    events = read_events(client, job["id"], on_first=gate.event.set)
    final = events[-1]
    assert final["status"] == "done", final["error"]
    assert final["has_result"] and final["result"]["steps"] == QUICK["steps"]
    # Several live updates with rising progress and fresh previews, and every step's loss exactly once.
    running = [e for e in events if e["progress"]]
    assert len(running) >= 2
    fractions = [e["progress"]["fraction"] for e in running]
    assert fractions == sorted(fractions) and fractions[0] < 1.0
    assert len({e["preview_version"] for e in events if e["preview_version"]}) >= 2
    points = [p for e in events for p in e["losses"]]
    assert [p[0] for p in points] == list(range(1, QUICK["steps"] + 1))
    assert all(isinstance(p[2], float) and p[2] > 0 for p in points)
    # The losses can be fetched again from any offset.
    assert client.get(f"/api/jobs/{job['id']}?offset=10").json()["losses"] == points[10:]

    preview = client.get(f"/api/jobs/{job['id']}/preview.jpg")
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
    result = client.get(f"/api/jobs/{job['id']}/result.png")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert f'filename="stylized_my_photo_{job["id"][:8]}.png"' in result.headers["content-disposition"]
    with Image.open(io.BytesIO(result.content)) as image:
        assert image.size == (64, 48)


def test_example_images_can_be_used(client: TestClient) -> None:
    job = start_job(client, {"example": "astronaut"}, [{"example": "starry_night"}, {"example": "great_wave"}],
                    **{**QUICK, "steps": 3})
    snap = wait_for(client, job["id"], finished)
    assert snap["status"] == "done", snap["error"]
    assert snap["styles"] == ["starry_night", "great_wave"] and snap["result"]["width"] == 64


def test_cancel_a_running_job_keeps_the_best_image(client: TestClient) -> None:
    content, styles = two_uploads(client)
    job = start_job(client, content, styles, **{**QUICK, "steps": 2000})
    wait_for(client, job["id"], lambda s: s["progress"] is not None)
    response = client.post(f"/api/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    snap = wait_for(client, job["id"], finished)
    assert snap["status"] == "cancelled"
    assert 1 <= snap["result"]["steps"] < 2000 and snap["result"]["stop_reason"] == "stopped"
    assert client.get(f"/api/jobs/{job['id']}/result.png").status_code == 200


def test_queue_positions_and_cancelling_a_waiting_job(make_client) -> None:  # noqa: ANN001
    gate = Gate()
    client = make_client(backbone_factory=gate)
    content, styles = two_uploads(client)
    first = start_job(client, content, styles, **QUICK)
    assert gate.entered.wait(30)
    second = start_job(client, content, styles, **QUICK)
    third = start_job(client, content, styles, **QUICK)
    assert client.get(f"/api/jobs/{first['id']}").json()["status"] == "running"
    assert (second["queue_position"], third["queue_position"]) == (1, 2)
    cancelled = client.post(f"/api/jobs/{second['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and not cancelled["has_result"]
    assert client.get(f"/api/jobs/{third['id']}").json()["queue_position"] == 1
    assert client.get(f"/api/jobs/{second['id']}/result.png").status_code == 404
    gate.event.set()
    assert wait_for(client, third["id"], finished)["status"] == "done"
    assert client.get(f"/api/jobs/{first['id']}").json()["status"] == "done"


def test_a_failing_job_shows_its_error_and_the_server_keeps_serving(make_client) -> None:  # noqa: ANN001
    client = make_client(backbone_factory=flaky_factory)
    content, styles = two_uploads(client)
    crashed = start_job(client, content, styles, **QUICK, pooling="average")
    good = start_job(client, content, styles, **QUICK)
    snap = wait_for(client, crashed["id"], finished)
    assert snap["status"] == "failed"
    # The exception's text (which may name server paths) stays in the server's log.
    assert snap["error"] == "internal error: the job failed (the server's log has the details)"
    assert read_events(client, crashed["id"])[-1]["error"] == snap["error"]
    assert wait_for(client, good["id"], finished)["status"] == "done"
    assert client.get(f"/api/jobs/{crashed['id']}/result.png").status_code == 404
    # An unknown layer is refused before the job is queued.
    response = client.post("/api/jobs", json={"content": content, "styles": styles,
                                              "options": {**QUICK, "style_layers": "relu1_1,relu9_9"}})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "--style-layers/--content-layers/--structure-layers: unknown layer 'relu9_9'")


def test_a_missing_upload_fails_with_its_label_not_a_server_path(client: TestClient) -> None:
    content, styles = two_uploads(client)
    client.app.state.server.uploads.get(content["upload"]).path.unlink()
    job = start_job(client, content, styles, **QUICK)
    snap = wait_for(client, job["id"], finished)
    assert snap["status"] == "failed"
    assert snap["error"] == "my_photo.png: content image: no such file"


@pytest.mark.parametrize(("options", "message"), [
    ({"size": 100000}, "--size: must be at most 2048 here"),
    ({"steps": "many"}, "--steps: 'many' is not a whole number"),
    ({"device": "cuda"}, "option 'device' cannot be set here"),
    ({"weights": "/etc/passwd"}, "option 'weights' cannot be set here"),
    ({"init": "/etc/passwd"}, "--init: '/etc/passwd' is not one of content, noise"),
    ({"model": "resnet"}, "--model: 'resnet' is not one of vgg16, vgg19"),
])
def test_bad_options_are_refused_with_one_line(client: TestClient, options: dict, message: str) -> None:
    content, styles = two_uploads(client)
    response = client.post("/api/jobs", json={"content": content, "styles": styles, "options": options})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


def test_options_are_parsed_to_transfer_keywords() -> None:
    parsed = parse_options({"size": "256", "style_weight": 3, "style_layers": "relu1_1, relu2_1",
                            "style_layer_weights": [1, 2], "lr": "", "init": "noise"})
    assert parsed == {"size": 256, "style_weight": 3.0, "style_layers": ("relu1_1", "relu2_1"),
                      "style_layer_weights": (1.0, 2.0), "lr": None, "init": "noise"}


# --------------------------------------------------------------------------- nothing from the client is a path


@pytest.mark.parametrize("name", ["../../pyproject.toml", "..%2F..%2Fpyproject.toml", "%2e%2e/CREDITS.md",
                                  "CREDITS.md", "eiffel_tower.jpg", "/etc/passwd"])
def test_example_names_are_not_paths(client: TestClient, name: str) -> None:
    assert client.get(f"/api/examples/{name}").status_code == 404
    response = client.post("/api/jobs", json={"content": {"example": name}, "styles": [{"example": "the_scream"}]})
    assert response.status_code == 400
    assert "no example named" in response.json()["detail"]


@pytest.mark.parametrize("ref", [
    {"upload": "../../etc/passwd"}, {"upload": "00000000-0000-0000-0000-000000000000"},
    {"upload": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"},  # a uuid, but not a version-4 one
    {"upload": "a" * 32}, {}, {"upload": "x", "example": "astronaut"},
])
def test_upload_refs_are_only_ids(client: TestClient, ref: dict) -> None:
    response = client.post("/api/jobs", json={"content": ref, "styles": [{"example": "the_scream"}]})
    assert response.status_code == 400


@pytest.mark.parametrize("path", [
    "/api/jobs/../../etc/passwd", "/api/jobs/..%2F..%2Fetc%2Fpasswd/result.png", "/api/jobs/%2e%2e/result.png",
    "/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
])
def test_traversal_in_urls_finds_nothing(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"import" not in response.content and b"[project]" not in response.content


def test_results_are_only_reachable_by_their_job_id(client: TestClient) -> None:
    content, styles = two_uploads(client)
    job = start_job(client, content, styles, **{**QUICK, "steps": 2})
    wait_for(client, job["id"], finished)
    other = "4" + job["id"][1:] if job["id"][0] != "4" else "5" + job["id"][1:]
    assert client.get(f"/api/jobs/{other}/result.png").status_code == 404
    assert client.get("/api/jobs", headers={"x-stylize-token": "wrong"}).status_code == 403  # not without the token
    assert client.get(f"/api/jobs/{job['id']}/result.png").status_code == 200


def test_requests_for_other_host_names_are_refused(client: TestClient) -> None:
    """A page elsewhere whose name was pointed at 127.0.0.1 (DNS rebinding) gets nothing."""
    assert client.get("/api/options", headers={"host": "evil.example:8000"}).status_code == 400
    assert client.get("/api/options", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/api/options", headers={"host": "[::1]:8000"}).status_code == 200


@pytest.mark.integration
def test_the_real_network_is_loaded_once_and_a_fallback_is_noted(make_client, offline_weights,  # noqa: ANN001
                                                                 tmp_path: Path) -> None:
    log = tmp_path / "loads.txt"
    client = make_client(backbone_factory=CountingCache(log), allow_download=False)
    snaps = []
    for _ in range(2):
        job = start_job(client, {"example": "astronaut"}, [{"example": "the_scream"}],
                        size=64, steps=2, scales="1", model="vgg19")
        snaps.append(wait_for(client, job["id"], finished))
    assert [s["status"] for s in snaps] == ["done", "done"], snaps[0]["error"]
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["loaded", "cached"]
    for snap in snaps:
        assert snap["network"].startswith("vgg16")
        assert snap["notes"] == ["vgg19 weights are not available on this server; vgg16 was used"]
