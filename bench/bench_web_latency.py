"""Latency of the web app's status route while jobs run: 20 queued jobs, bursts of 200 concurrent requests.

Starts ``stylize.web.create_app`` in a child process on 127.0.0.1 (a free port; nothing else is
contacted), submits ``--jobs`` jobs, and while the first one runs sends ``--rounds`` bursts of
``--concurrency`` requests at once, half ``GET /api/jobs/{id}`` (the status of the running job,
with all its losses) and half ``GET /`` (the page). Prints p50 / p95 / max latency per route and
the number of errors, with the p95 of all requests and the median of the bursts' p95s. The job
runs in the server's job process (:mod:`stylize.web.worker`); the tiny network makes the most
reports per second for the server to relay (its steps are short). The bursts are sent by a
hand-written keep-alive client (``--client raw``, the default) that costs far less CPU than
httpx (``--client httpx``, used before: on 2 cores its own work was most of a burst's time).

    flock /tmp/stylize-bench.lock .venv/bin/python bench/bench_web_latency.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]

SERVER = """
import sys, uvicorn
from bench.bench_web_latency import tiny_factory
from stylize.web import create_app
data, port, network, nice = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
factory = tiny_factory if network == "tiny" else None
app = create_app(backbone_factory=factory, devices=("cpu",), data_dir=data, token="bench", preview_interval=0.5,
                 event_interval=0.25, allow_download=False, job_nice=nice)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def tiny_factory(opts: Any) -> Any:
    """The tiny random network (module-level: the job process gets the factory by pickling)."""
    from stylize.backbone import tiny_backbone

    return tiny_backbone(opts.model, pooling=opts.pooling, seed=0)


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def timed(client: httpx.AsyncClient, path: str) -> tuple[str, float, bool]:
    start = time.perf_counter()
    try:
        response = await client.get(path)
        ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    return path, time.perf_counter() - start, ok


class RawClient:
    """Keep-alive HTTP/1.1 connections written by hand, one per concurrent request.

    httpx's own Python work per request (about 5 ms of CPU on the 2-core machine, against the
    server's 1.3 ms) made the benchmark's client, not the server, the bulk of a burst's time.
    """

    def __init__(self, url: str, token: str) -> None:
        self.host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
        self.port = int(port)
        self.token = token
        self.connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def connect(self, count: int) -> None:
        for slot in range(count):
            self.connections[slot] = await asyncio.open_connection(self.host, self.port)

    async def get(self, slot: int, path: str) -> tuple[str, float, bool]:
        start = time.perf_counter()
        request = (f"GET {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\nx-stylize-token: {self.token}\r\n"
                   "\r\n").encode()
        for _ in range(2):  # once more on a fresh connection if the server closed this one
            try:
                if slot not in self.connections:
                    self.connections[slot] = await asyncio.open_connection(self.host, self.port)
                reader, writer = self.connections[slot]
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                return path, time.perf_counter() - start, head.split(b" ", 2)[1] == b"200"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                self.connections.pop(slot)[1].close()
        return path, time.perf_counter() - start, False

    def close(self) -> None:
        for _, writer in self.connections.values():
            writer.close()


async def run(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, headers={"x-stylize-token": "bench"}, limits=limits,
                                 timeout=60) as client:
        body = {"content": {"example": "astronaut"}, "styles": [{"example": "the_scream"}],
                "options": {"size": args.size, "steps": args.steps, "scales": "1", "tol": 0, "model": "vgg16"}}
        ids = []
        for _ in range(args.jobs):
            response = await client.post("/api/jobs", content=json.dumps(body),
                                         headers={"content-type": "application/json"})
            response.raise_for_status()
            ids.append(response.json()["id"])
        while True:
            snap = (await client.get(f"/api/jobs/{ids[0]}")).json()
            if (snap["status"] == "done") if args.idle else snap["progress"] is not None:
                break
            await asyncio.sleep(0.1)
        results: dict[str, list[float]] = {"status": [], "page": [], "errors": [], "status_p95": [], "page_p95": []}
        raw = RawClient(url, "bench")
        if args.client == "raw":
            await raw.connect(args.concurrency)
        for _ in range(args.rounds):
            paths = [f"/api/jobs/{ids[0]}" if i % 2 == 0 else "/" for i in range(args.concurrency)]
            burst: dict[str, list[float]] = {"status": [], "page": []}
            calls = [raw.get(i, p) if args.client == "raw" else timed(client, p) for i, p in enumerate(paths)]
            for path, seconds, ok in await asyncio.gather(*calls):
                burst["page" if path == "/" else "status"].append(seconds)
                if not ok:
                    results["errors"].append(seconds)
            for route, values in burst.items():
                results[route] += values
                results[f"{route}_p95"].append(p95(values))
            await asyncio.sleep(args.pause)
        raw.close()
        snap = (await client.get(f"/api/jobs/{ids[0]}")).json()
        results["steps_done"] = [len(snap["losses"])]
        return results


def measure(args: argparse.Namespace, network: str, nice: int) -> dict[str, list[float]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="stylize-bench-web-") as data:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, data, str(port), network, str(nice)], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url + "/api/options", timeout=5)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            return asyncio.run(run(url, args))
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between bursts")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--networks", default="tiny,vgg16", help="tiny (random, no weights) and/or vgg16 (cached)")
    parser.add_argument("--nice", default="0,10", help="job_nice values to compare")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="the bursts' client: hand-written keep-alive HTTP/1.1 (light), or httpx (heavy)")
    parser.add_argument("--idle", action="store_true", help="one job of 20 steps, measured after it ended (the floor)")
    args = parser.parse_args()
    if args.idle:
        args.jobs, args.steps = 1, 20
    print(f"client {args.client}; {args.jobs} queued jobs of {args.size} px; {args.rounds} bursts of "
          f"{args.concurrency} concurrent requests (half status, half page) while the first job runs; p95: of all "
          "requests, and the median of the bursts' p95; load: the 1-minute load average before the run")
    print(f"{'network':<8} {'nice':>4} {'route':<7} {'requests':>8} {'p50 s':>7} {'p95 s':>7} {'p95 med':>7} "
          f"{'max s':>7} {'errors':>6} {'job steps':>9} {'load':>5}")
    for network in args.networks.split(","):
        for nice in (int(n) for n in args.nice.split(",")):
            load = os.getloadavg()[0]
            results = measure(args, network, nice)
            for route in ("status", "page"):
                values = sorted(results[route])
                print(f"{network:<8} {nice:>4} {route:<7} {len(values):>8} {statistics.median(values):>7.3f} "
                      f"{p95(values):>7.3f} {statistics.median(results[route + '_p95']):>7.3f} {values[-1]:>7.3f} "
                      f"{len(results['errors']):>6} {results['steps_done'][0]:>9} {load:>5.2f}", flush=True)


if __name__ == "__main__":
    main()
