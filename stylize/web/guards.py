"""ASGI middleware that protects the local server: request size, Host header, token, response headers.

* :class:`BodyLimit` answers 413 to a request body over the limit, from its Content-Length
  or, without one, as soon as that many bytes have arrived (nothing past it is read).
* :class:`HostCheck` answers 400 unless the Host header names an allowed host. A server on
  127.0.0.1 then cannot be reached through another domain name that resolves there (DNS
  rebinding: a web page you visit pointing its own name at your machine).
* :class:`AccessGuard` refuses requests made by other sites and requests without the server's
  token (see its docstring).
* :class:`SecurityHeaders` tells the browser to load nothing from elsewhere (the page needs
  nothing outside this server), not to guess content types, and not to be framed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

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


TOKEN_HEADER = "x-stylize-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Paths anyone on this computer may read without the token (when the server is on loopback only).
LOOPBACK_PUBLIC = ("/", "/favicon.ico", "/static/", "/api/options", "/api/examples/")


async def _reply(send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
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


def cookie_name(scope: Scope) -> str:
    """The token cookie of this server: one per port, since cookies do not tell ports apart."""
    host = _header(scope, b"host") or ""
    port = host.rsplit(":", 1)[1] if host.count(":") == 1 or "]:" in host else ""
    return f"stylize-token-{port if port.isdigit() else 'default'}"


def token_cookie(scope: Scope, token: str) -> bytes:
    return f"{cookie_name(scope)}={token}; Path=/; HttpOnly; SameSite=Strict".encode()


class AccessGuard:
    """Only this server's own page (or a client given its token) may use it.

    * A request that changes something (any method but GET and HEAD) must come from the page
      itself: ``Sec-Fetch-Site`` (sent by browsers) must be ``same-origin`` and ``Origin``, when
      sent, must be this server; and it must carry the token in the ``X-Stylize-Token`` header,
      which the page gets inside itself and another site cannot read or send without a CORS
      preflight that this server never grants. A cookie is not enough for such a request.
    * Any other request needs the token too (header, the cookie the page sets, or ``?token=``,
      which answers with the cookie and a redirect to the same URL without it) except, with
      ``public`` paths (a server on loopback), the page, its files, the options and examples.
      Requests that browsers mark ``Sec-Fetch-Site: cross-site`` get nothing but the page.
    """

    def __init__(self, app: ASGIApp, token: str, public: tuple[str, ...] = ()) -> None:
        self.app = app
        self.token = token
        self.public = public

    def _valid(self, candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), self.token.encode())

    def _is_public(self, path: str) -> bool:
        return any(path == p or (p.endswith("/") and p != "/" and path.startswith(p)) for p in self.public)

    def _refusal(self, scope: Scope) -> str | None:
        """Why this request is refused, or None."""
        site = _header(scope, b"sec-fetch-site")
        path = scope.get("path", "")
        if scope["method"] not in SAFE_METHODS:
            origin = _header(scope, b"origin")
            own = f"{scope.get('scheme', 'http')}://{_header(scope, b'host') or ''}".lower()
            if site not in (None, "same-origin") or (origin is not None and origin.lower() != own):
                return "requests from other sites are refused"
            if not self._valid(_header(scope, TOKEN_HEADER.encode())):
                return "this request needs the server's token (reload the page)"
            return None
        if site == "cross-site" and path != "/":
            return "requests from other sites are refused"
        if self._is_public(path) or self._valid(_header(scope, TOKEN_HEADER.encode())):
            return None
        cookies = SimpleCookie()
        try:
            cookies.load(_header(scope, b"cookie") or "")
        except Exception:  # a malformed cookie header: as if there were none
            cookies = SimpleCookie()
        morsel = cookies.get(cookie_name(scope))
        if self._valid(morsel.value if morsel else None):
            return None
        return "this server needs its token: open the address that 'stylize serve' printed"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if scope["method"] in SAFE_METHODS and given and self._valid(given[-1]):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = quote(scope.get("path", "/")) + (f"?{rest}" if rest else "")
            await _reply(send, 303, "see the same address without the token",
                         [(b"location", location.encode("latin-1")), (b"set-cookie", token_cookie(scope, self.token))])
            return
        reason = self._refusal(scope)
        if reason is not None:
            await _reply(send, 403, reason)
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
