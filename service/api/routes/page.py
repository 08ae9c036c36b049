"""``GET /``: the demo page, and ``GET /static/{name}``: its assets (``service/static/``).

The page is plain HTML, CSS and JavaScript with no build step and no external requests; it calls the
JSON API from the browser. Neither the page nor its assets need the API key (they hold no data): the
page asks the visitor for the key and sends it with each API call. The assets ship as package data,
so an installed package and the Docker image serve them too.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from service.api.route_classes import RouteClass, classed

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
# The page may load only its own assets and talk only to its own origin (no CDN, no other hosts);
# images also come from blob: URLs (the stability PNG is fetched with the API key, then shown).
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                           "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'")

router = APIRouter(tags=["page"], include_in_schema=False)


def _asset(name: str) -> Response:
    """The file ``name`` of the static dir, if it is one of the page's assets; else 404."""
    path = STATIC_DIR / name
    media_type = MEDIA_TYPES.get(path.suffix)
    # Only plain file names of known types: no sub-paths, no dot files, nothing outside STATIC_DIR.
    if media_type is None or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, f"no static asset {name!r}")
    return Response(path.read_bytes(), media_type=media_type, headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff"})


@router.get("/")
@classed(RouteClass.OPEN)
async def page() -> Response:
    """The demo page: classify a drawn digit, run the pendulum, read stability reports."""
    return _asset("index.html")


@router.get("/static/{name}")
@classed(RouteClass.OPEN)
async def static_asset(name: str) -> Response:
    """One of the page's assets (CSS, JavaScript)."""
    return _asset(name)
