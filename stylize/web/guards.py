"""ASGI middleware that protects the local server: request size, Host header, response headers.

* :class:`BodyLimit` answers 413 to a request body over the limit, from its Content-Length
  or, without one, as soon as that many bytes have arrived (nothing past it is read).
* :class:`HostCheck` answers 400 unless the Host header names an allowed host. A server on
  127.0.0.1 then cannot be reached through another domain name that resolves there (DNS
  rebinding: a web page you visit pointing its own name at your machine).
* :class:`SecurityHeaders` tells the browser to load nothing from elsewhere (the page needs
  nothing outside this server), not to guess content types, and not to be framed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestTooLarge(HTTPException):
    """Raised while a body is read past the limit; FastAPI answers it with 413 like any HTTPException."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the request is larger than this server accepts ({self.max_bytes // 2**20} MiB)"
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > self.max_bytes):
            await _reply(send, 413, message)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(message)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge:
            if not started:
                await _reply(send, 413, message)


class HostCheck:
    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    @staticmethod
    def hostname(header: str) -> str:
        header = header.strip().lower()
        if header.startswith("["):  # [::1]:8000
            return header[1:].split("]", 1)[0]
        return header.rsplit(":", 1)[0] if header.count(":") == 1 else header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = self.hostname(_header(scope, b"host") or "")
            if host not in self.allowed:
                if scope["type"] == "http":
                    await _reply(send, 400, "this server only answers requests addressed to "
                                 + ", ".join(sorted(self.allowed)))
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    HEADERS = [
        (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", []), *self.HEADERS]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)
