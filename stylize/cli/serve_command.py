"""``stylize serve``: the local web app (upload, watch the painting appear live, download).

Needs the ``web`` extra (FastAPI, uvicorn, python-multipart).
"""

from __future__ import annotations

import argparse
import ipaddress
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
  stylize serve --host 0.0.0.0       # reachable from other machines: only on a network you trust
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


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        from stylize.web import create_app
    except ModuleNotFoundError as exc:
        error(f"stylize serve needs the web extra ({exc.name} is missing): pip install 'stylize[web]'")
        return EXIT_USAGE
    for name in ("max_size", "max_steps", "max_upload_pixels"):
        if getattr(args, name) < 1:
            raise OptionError(f"--{name.replace('_', '-')}: must be a positive whole number")
    if args.max_upload_mb <= 0:
        raise OptionError("--max-upload-mb: must be positive")
    resolve_device(args.device)  # an unavailable device is a one-line error now, not in every job
    loopback = is_loopback(args.host)
    if not loopback:
        warnings.warn(f"listening on {args.host}: anyone who can reach this machine can use the app and its "
                      "computer time; use it only on a network you trust", stacklevel=1)
    try:
        app = create_app(
            devices=(args.device,), max_size=args.max_size, max_steps=args.max_steps,
            max_upload_bytes=int(args.max_upload_mb * 2**20), max_upload_pixels=args.max_upload_pixels,
            allow_download=args.allow_download,
            # On loopback, answer only requests addressed to this machine (no DNS rebinding);
            # elsewhere the visitors' browsers use whatever name or address reaches it.
            allowed_hosts=None if not loopback else ("127.0.0.1", "localhost", "::1"),
        )
    except ValueError as exc:
        raise OptionError(f"--max-upload-pixels: {exc}") from None
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{port}/"
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
