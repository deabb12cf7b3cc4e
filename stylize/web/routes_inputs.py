"""Routes of the page itself, the options form, the example images and uploads."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse

from stylize.web.examples import EXAMPLES, available_examples
from stylize.web.form import form_fields
from stylize.web.guards import token_cookie
from stylize.web.server import Server, get_server
from stylize.web.uploads import DecoderBusyError, UploadTooLargeError

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_META = '<meta name="stylize-token" content="">'

router = APIRouter()
ServerDep = Annotated[Server, Depends(get_server)]


def render_page(token: str) -> str:
    """The page's HTML with ``token`` inside it."""
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return text.replace(TOKEN_META, f'<meta name="stylize-token" content="{html.escape(token)}">')


@router.get("/", include_in_schema=False)
async def index(request: Request, server: ServerDep) -> HTMLResponse:
    """The page, with this server's token inside it (and in a cookie for its images and events)."""
    response = HTMLResponse(server.page, headers={"Cache-Control": "no-store"})
    response.raw_headers.append((b"set-cookie", token_cookie(request.scope, server.token)))
    return response


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


@router.get("/api/options")
async def options(server: ServerDep) -> dict[str, Any]:
    """The options form (from stylize.Options), the server's limits and the example images."""
    return {
        "fields": [f.as_json() for f in form_fields(server.form_limits)],
        "limits": server.limits,
        "examples": [{"name": e.name, "kind": e.kind, "title": e.title, "credit": e.credit,
                      "url": f"/api/examples/{e.name}"} for e in available_examples()],
    }


@router.get("/api/examples/{name}", response_class=FileResponse)
async def example_image(name: str) -> FileResponse:
    """An example image (JPEG), by name from a fixed list."""
    example = EXAMPLES.get(name)
    if example is None or not example.path.is_file():
        raise HTTPException(404, "no such example")
    return FileResponse(example.path, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.post("/api/uploads", status_code=201)
async def upload(server: ServerDep, file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
    """Multipart ``file``; checked as an image; answers ``{id, label, width, height}``."""
    async def chunks() -> AsyncIterator[bytes]:
        while data := await file.read(2**20):
            yield data

    try:
        stored = await server.uploads.add(chunks(), file.filename)
    except UploadTooLargeError as exc:
        raise HTTPException(413, str(exc)) from None
    except DecoderBusyError as exc:
        raise HTTPException(503, str(exc)) from None
    finally:
        await file.close()
    return {"id": stored.id, "label": stored.label, "width": stored.width, "height": stored.height}
