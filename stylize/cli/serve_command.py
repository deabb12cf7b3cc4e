"""``stylize serve``: the local web app (upload, watch the painting appear live, download).

Needs the ``web`` extra (FastAPI, uvicorn, python-multipart).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import secrets
import socket
import sys
import warnings
import webbrowser

from stylize.api import resolve_device
from stylize.cli.common import EXIT_USAGE, ArgumentParser, error
from stylize.errors import OptionError
from stylize.options import DEVICES

EPILOG = """examples:
  stylize serve                      # then open http://127.0.0.1:8000
  stylize serve --port 8080 --open
  stylize serve --host 0.0.0.0       # reachable from other machines: open the printed URL (it has the token)
  stylize serve --data ~/paintings   # keep the results there
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="stylize serve",
        description="Start the stylize web app: pick a photo and a painting, watch the result appear, download it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, only this computer can connect)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks a free one)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where to compute (default: auto)")
    parser.add_argument("--max-size", type=int, default=2048, metavar="PX",
                        help="largest output size a visitor may ask for (default: 2048)")
    parser.add_argument("--max-steps", type=int, default=2000, metavar="N",
                        help="most steps per scale a visitor may ask for (default: 2000)")
    parser.add_argument("--max-upload-mb", type=float, default=25, metavar="MB",
                        help="largest image file accepted (default: 25)")
    parser.add_argument("--max-upload-pixels", type=int, default=50_000_000, metavar="N",
                        help="largest image accepted, in pixels (default: 50000000)")
    parser.add_argument("--max-work", type=float, default=400, metavar="MPS",
                        help="most work per job, in million pixel-steps (pixels x steps over all scales and tiles; "
                             "default: 400; a default 2048 px run is about 230)")
    parser.add_argument("--max-seconds", type=float, default=1800, metavar="S",
                        help="a job that runs longer stops and keeps its best image (default: 1800)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="results folder: database and images of every job (default: the user's data folder, "
                             "e.g. ~/.local/share/stylize/web)")
    parser.add_argument("--keep-jobs", type=int, default=1000, metavar="N",
                        help="keep the newest N jobs; older finished ones are deleted (default: 1000)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another host name the server may be reached by (repeatable; with --host)")
    parser.add_argument("--no-download", dest="allow_download", action="store_false",
                        help="never download network weights (use cached or offline weights only)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...]:
    """Names the Host header may carry: loopback, the listening address, and for a wildcard address
    this machine's names and addresses (plus ``--allow-host``)."""
    from stylize.web.guards import LOOPBACK_HOSTS

    names = {*LOOPBACK_HOSTS, host.strip("[]"), *extra}
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        for name in {socket.gethostname(), socket.getfqdn()}:
            names.add(name)
            with contextlib.suppress(OSError):
                names.update(info[4][0] for info in socket.getaddrinfo(name, None))
    return tuple(sorted(n.lower() for n in names if n))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or OptionError naming --host/--port."""
    if not 0 <= port <= 65535:
        raise OptionError(f"--port: {port} is not a port number (0 to 65535)")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OptionError(f"--host: cannot resolve {host!r} ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OptionError(f"--port: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _check(args: argparse.Namespace) -> None:
    for name in ("max_size", "max_steps", "max_upload_pixels", "keep_jobs"):
        if getattr(args, name) < 1:
            raise OptionError(f"--{name.replace('_', '-')}: must be a positive whole number")
    for name in ("max_upload_mb", "max_work", "max_seconds"):
        if not getattr(args, name) > 0:
            raise OptionError(f"--{name.replace('_', '-')}: must be positive")


def _make_app(args: argparse.Namespace, loopback: bool, token: str) -> object:
    from stylize.web import create_app
    from stylize.web.app import Limits
    from stylize.web.store import FolderInUseError

    limits = Limits(max_size=args.max_size, max_steps=args.max_steps, max_upload_bytes=int(args.max_upload_mb * 2**20),
                    max_upload_pixels=args.max_upload_pixels, max_work=args.max_work * 1e6,
                    max_seconds=args.max_seconds)
    try:
        return create_app(
            devices=(args.device,), limits=limits, allow_download=args.allow_download, data_dir=args.data,
            keep_jobs=args.keep_jobs, token=token, token_everywhere=not loopback,
            # Only requests addressed to this machine's own names (no DNS rebinding).
            allowed_hosts=allowed_hosts(args.host, args.allow_host),
        )
    except ValueError as exc:
        raise OptionError(f"--max-upload-pixels: {exc}") from None
    except FolderInUseError as exc:
        raise OptionError(f"--data: {exc}") from None
    except OSError as exc:
        raise OptionError(f"--data: cannot use {args.data or 'the default results folder'} "
                          f"({exc.strerror or exc})") from None


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        import stylize.web  # noqa: F401
    except ModuleNotFoundError as exc:
        error(f"stylize serve needs the web extra ({exc.name} is missing): pip install 'stylize[web]'")
        return EXIT_USAGE
    _check(args)
    resolve_device(args.device)  # an unavailable device is a one-line error now, not in every job
    loopback = is_loopback(args.host)
    if not loopback:
        warnings.warn(f"listening on {args.host}: anyone who can reach this machine and has the printed URL (it "
                      "holds the token) can use the app; there is no TLS, put a reverse proxy in front", stacklevel=1)
    token = secrets.token_urlsafe(24)
    sock = bind(args.host, args.port)
    try:
        app = _make_app(args, loopback, token)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    shown = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{port}/"
    if not loopback:
        url += f"?token={token}"
    try:
        print(f"stylize: serving on {url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.open:
            webbrowser.open(url)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C is the normal way to stop a server (uvicorn re-raises the one it handled)
        pass
    finally:
        sock.close()
    print("stylize: server stopped", file=sys.stderr)
    return 0
