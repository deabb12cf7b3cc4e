"""``stylize serve``: argument checks, and a real server process answering on localhost."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from stylize.cli import main  # noqa: E402
from stylize.cli.serve_command import is_loopback  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.org"))


def test_a_port_in_use_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"stylize: error: --port: cannot listen on 127\.0\.0\.1:{port} \(.+\)\n", err)


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "70000"], "--port: 70000 is not a port number"),
    (["--max-size", "0"], "--max-size: must be a positive whole number"),
    (["--device", "gpu"], "argument --device: invalid choice"),
])
def test_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["serve", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("stylize: error: ") and message in err and len(err.strip().splitlines()) == 1


def serve(data: Path, *args: str) -> tuple[subprocess.Popen, str, str]:
    """Start ``stylize serve --port 0 --data DATA ARGS``; the process, the URL it prints and what it printed before."""
    proc = subprocess.Popen([sys.executable, "-m", "stylize", "serve", "--port", "0", "--data", str(data), *args],
                            cwd=REPO,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        found = re.search(r"serving on (http://\S+)", line)
        if found:
            return proc, found.group(1), "".join(lines)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no URL printed: {''.join(lines)}")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_serve_answers_on_localhost_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    proc, url, _ = serve(tmp_path)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/options", timeout=30) as response:
            names = {f["name"] for f in json.load(response)["fields"]}
        assert {"size", "steps", "model"} <= names
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"<title>stylize</title>" in response.read()
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err and "error" not in err
    assert (tmp_path / "stylize-web.sqlite3").is_file()  # the results folder it was given


def test_beyond_loopback_the_printed_url_carries_the_token(tmp_path: Path) -> None:
    proc, url, before = serve(tmp_path, "--host", "0.0.0.0")
    try:
        assert "there is no TLS" in before
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", url)
        assert found, url
        base, token = f"http://127.0.0.1:{found.group(1)}/", found.group(2)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "api/options", timeout=30)
        assert refused.value.code == 403
        request = urllib.request.Request(base + "api/options", headers={"x-stylize-token": token})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err


def test_serve_warns_when_listening_beyond_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:  # the port is taken, so the command ends right after the warning
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        assert main(["serve", "--host", "0.0.0.0", "--port", str(taken.getsockname()[1])]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("stylize: warning: listening on 0.0.0.0: anyone who can reach this machine")
    assert lines[1].startswith("stylize: error: --port: cannot listen on 0.0.0.0:")


def test_one_results_folder_serves_one_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stylize.web.store import FolderInUseError, ResultStore

    store = ResultStore(tmp_path)
    try:
        with pytest.raises(FolderInUseError):  # (checked first: without the lock, serve would not return)
            ResultStore(tmp_path)
        assert main(["serve", "--port", "0", "--data", str(tmp_path)]) == 2
    finally:
        store.close()
    assert capsys.readouterr().err == f"stylize: error: --data: {tmp_path} is used by another stylize server\n"
