"""The inbox's pages: ``/`` (and ``/invite/{token}``, the link an invite names) serve
``web/ui/index.html``; ``/ui/...`` the page's static ES modules, styles and catalogues; ``/docs``
Swagger UI from local files (web/ui/vendor/swagger-ui). Nothing is loaded from another host, so the
inbox works on a shop's LAN without internet.

Every page and file carries a strict Content-Security-Policy (scripts and styles only from omnidesk
itself, no inline script, frames only ``blob:``/same origin, nothing framed by others) and
``nosniff``. ``index.html`` is ``no-cache`` (a new release is picked up at once); the modules are
revalidated by their ETag.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI = Path(__file__).resolve().parent / "ui"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "frame-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}

router = APIRouter(include_in_schema=False)


def index() -> FileResponse:
    return FileResponse(UI / "index.html", media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@router.get("/")
def inbox() -> FileResponse:
    """The agents' inbox (its sign-in form when nobody is signed in)."""
    return index()


@router.get("/invite/{token}")
def invite_page(token: str = PathParam(max_length=100)) -> FileResponse:
    """An invite link: the same page, which reads the token from the address."""
    return index()


class UiFiles(StaticFiles):
    """``web/ui`` with the page headers on every answer and ``no-cache`` (revalidate by ETag)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({**PAGE_HEADERS, "Cache-Control": "no-cache"})
        return response


def mount(app: FastAPI) -> None:
    """Add the pages, the static files and the local Swagger UI to ``app`` (created with
    ``docs_url=None``)."""
    app.include_router(router)
    app.mount("/ui", UiFiles(directory=UI), name="ui")


@router.get("/docs")
def docs() -> FileResponse:
    """Swagger UI (web/ui/vendor/swagger-ui), on this API's OpenAPI document."""
    # Swagger UI sets a few style attributes in its markup: styles may be inline here.
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache",
               "Content-Security-Policy": CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")}
    return FileResponse(UI / "vendor" / "swagger-ui" / "docs.html", media_type="text/html; charset=utf-8",
                        headers=headers)
