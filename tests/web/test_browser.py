"""End to end in a real headless Chromium: upload two images, watch the live preview, download;
reload the page and find the jobs in the history; restart the server and find them still there.

Needs Debian's ``chromium`` and the ``playwright`` Python package (both installed by ``.ci/run``);
the test is skipped without them. Playwright drives the system Chromium, so it never downloads a
browser. The page runs under its real Content-Security-Policy.

The test uses the tiny network. With ``STYLIZE_UPDATE_SCREENSHOT=1`` it uses the real offline
VGG-16 instead (slower, but the picture is worth showing) and writes the page's screenshot to
``docs/images/web_app.png``; otherwise the screenshot goes to the test's temporary folder only.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402

from stylize.web import create_app  # noqa: E402

from .helpers import tiny_factory  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "images" / "web_app.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("no chromium here (apt-get install chromium)")


UPDATE_SCREENSHOT = os.environ.get("STYLIZE_UPDATE_SCREENSHOT") == "1"
SIZE, STEPS, SCALES = (256, 40, "auto") if UPDATE_SCREENSHOT else (192, 80, "1")


class Served:
    """The app served by uvicorn on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, factory: Callable[..., object] | None, data_dir: Path) -> None:
        app = create_app(backbone_factory=factory, devices=("cpu",), preview_interval=0.25, event_interval=0.1,
                         data_dir=data_dir, allow_download=False)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@pytest.fixture
def serve(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """``serve()`` starts the app with the tiny network on the test's results folder, stopping the
    one started before (a server restart); its URL."""
    factory = tiny_factory
    if UPDATE_SCREENSHOT:  # the job process loads the offline VGG-16 from the session's cache itself
        request.getfixturevalue("offline_weights")
        factory = None
    running: list[Served] = []

    def start() -> str:
        if running:
            running.pop().stop()
        running.append(Served(factory, tmp_path / "data"))
        return running[-1].url

    yield start
    for served in running:
        served.stop()


def cards(page: object) -> list[str]:
    """The statuses on the history's cards, newest first."""
    return page.locator("#gallery .card .card-status").all_inner_texts()  # type: ignore[attr-defined]


# Records, every time the page shows a new preview, the job status shown at that moment.
WATCH_PREVIEWS = """() => {
  window.previewLog = [];
  const img = document.getElementById('preview');
  new MutationObserver(() => window.previewLog.push({
    status: document.getElementById('job-status').textContent, src: img.getAttribute('src') || '',
  })).observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def test_upload_start_watch_and_download_in_a_real_browser(serve: Callable[[], str], images_dir: Path,
                                                          tmp_path: Path) -> None:
    executable = chromium_path()
    server = serve()
    content = images_dir / "content" / "building_eiffel_tower.jpg"
    style = images_dir / "style" / "van_gogh_starry_night.jpg"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            console_errors: list[str] = []
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.goto(server + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)

            page.set_input_files("#content-file", str(content))
            page.set_input_files("#style-file", str(style))
            page.wait_for_selector("#start:not([disabled])", timeout=30_000)
            assert page.locator("#content-picked figcaption").inner_text() == "building_eiffel_tower.jpg"
            page.fill("#opt-size", str(SIZE))
            page.fill("#opt-steps", str(STEPS))
            page.select_option("#opt-model", "vgg16")
            page.click("#more-options summary")
            page.fill("#opt-scales", SCALES)
            page.fill("#opt-tol", "0")
            page.click("#more-options summary")  # folded again: a shorter page in the screenshot
            page.evaluate(WATCH_PREVIEWS)
            page.click("#start")

            page.wait_for_function("() => document.getElementById('job-status').textContent === 'done'",
                                   timeout=600_000 if UPDATE_SCREENSHOT else 180_000)
            log = page.evaluate("() => window.previewLog")
            live = {entry["src"] for entry in log if entry["status"] == "running"}
            assert len(live) >= 2, f"expected two live previews, saw {log}"
            job_id = page.locator(".card").first.get_attribute("data-id")
            snap = page.request.get(f"{server}/api/jobs/{job_id}").json()
            assert snap["status"] == "done" and snap["result"]["width"] == SIZE
            width, height = snap["result"]["width"], snap["result"]["height"]
            # The finished image is on the stage: the last preview, at the result's size.
            page.wait_for_function(
                f"() => document.getElementById('preview').getAttribute('src').endsWith('v={snap['preview_version']}')"
                f" && document.getElementById('preview').naturalWidth === {width}")
            assert "done" in page.locator("#gallery .card").first.inner_text()
            assert page.locator("#stat-eta").inner_text().startswith(f"{width}×{height} in ")
            assert page.evaluate("() => document.querySelector('#curve').getContext('2d')"
                                 ".getImageData(60, 20, 400, 100).data.some(v => v > 0)")

            with page.expect_download() as download_info:
                page.click("#download")
            download = download_info.value
            assert download.suggested_filename == f"stylized_building_eiffel_tower_{job_id[:8]}.png"
            saved = tmp_path / "downloaded.png"
            download.save_as(saved)
            with Image.open(saved) as image:
                assert image.format == "PNG" and image.size == (width, height) == (SIZE, round(852 * SIZE / 1280))
            assert saved.read_bytes() == page.request.get(f"{server}/api/jobs/{job_id}/result.png").body()

            page.wait_for_timeout(300)  # let the bar's transition end
            shot = page.screenshot(full_page=True)

            # A job the server refuses shows why on the page, and the next job still runs: cancel it.
            page.click("#more-options summary")
            page.fill("#opt-style_layers", "relu1_1,relu9_9")
            page.click("#start")
            page.wait_for_function("() => document.getElementById('start-error').textContent.includes('relu9_9')",
                                   timeout=60_000)
            assert "unknown layer 'relu9_9'" in page.locator("#start-error").inner_text()
            page.click("#reset-options")
            page.fill("#opt-size", "64")
            page.fill("#opt-steps", "2000")
            page.fill("#opt-scales", "1")  # "More options" is still open
            page.fill("#opt-tol", "0")
            page.click("#start")
            page.wait_for_function("() => document.getElementById('stat-step').textContent.includes('step')",
                                   timeout=120_000)
            assert page.locator("#job-error").is_hidden()
            page.click("#cancel")
            page.wait_for_function("() => document.getElementById('job-status').textContent === 'cancelled'",
                                   timeout=120_000)
            assert page.locator("#download").get_attribute("aria-disabled") == "false"  # the best image so far
            assert page.locator("#gallery .card").count() == 2

            # Reload: the history comes from the server. Then restart the server: still there.
            expected = ["cancelled", "done"]
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_function("() => document.querySelectorAll('#gallery .card').length === 2")
            assert cards(page) == expected
            server = serve()
            page.goto(server + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_function("() => document.querySelectorAll('#gallery .card').length === 2")
            assert cards(page) == expected
            assert "2 job(s) kept by this server" in page.locator("#history-note").inner_text()
            page.locator(f"#gallery .card[data-id='{job_id}']").click()
            page.wait_for_function("() => document.getElementById('job-status').textContent === 'done'")
            assert saved.read_bytes() == page.request.get(f"{server}/api/jobs/{job_id}/result.png").body()
            page.locator(f"#gallery .card[data-id='{job_id}'] .card-delete").click()
            page.wait_for_function("() => document.querySelectorAll('#gallery .card').length === 1")
            assert page.request.get(f"{server}/api/jobs/{job_id}").status == 404
            # The only error the browser saw: the answer to the refused job.
            assert console_errors == ["Failed to load resource: the server responded with a status of 400 "
                                      "(Bad Request)"], console_errors
        finally:
            browser.close()
    with Image.open(io.BytesIO(shot)) as image:
        assert image.width == 1280
    (tmp_path / "web_app.png").write_bytes(shot)
    if UPDATE_SCREENSHOT:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)
