"""The playground page at `/`: a chat in the browser that shows what the model is thinking.

Three plain files in static/ (index.html, app.js, style.css), served as they
are: no build step, no CDN, no font from elsewhere, so the page works on a
machine with no internet. The page itself talks to the OpenAI routes (app.py)
and to the look-inside routes (look_inside.py); this module only hands out the
files, by name from a fixed list, so no request can reach another path.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from . import look_inside

STATIC = files("slm_serve") / "static"
# The page's files and their types; nothing else under /static is served.
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

router = APIRouter(tags=["playground"])
router.include_router(look_inside.router)


def _file(name: str) -> Response:
    media_type = PAGE_FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no file {name!r}; the page is at /")
    # no-cache: the browser revalidates, so a page from an upgraded slm-serve is never stale
    return Response(
        (STATIC / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/", include_in_schema=False)
def page() -> Response:
    return _file("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    return _file(name)
