"""Swagger UI (``/docs``) and ReDoc (``/redoc``) served from this process, with no CDN.

FastAPI's default pages load their JavaScript and CSS from jsdelivr (and ReDoc its fonts from Google),
so on an air-gapped host they render blank. Here the same pages (FastAPI's own HTML builders) point at
the assets that the pinned ``fastapi-offline`` wheel ships (Swagger UI bundle + CSS, ReDoc standalone
bundle, a favicon), mounted under ``/docs-assets``. Like the OpenAPI document they need no API key.
"""

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.api.route_classes import RouteClass, classed

ASSETS_URL = "/docs-assets"
ASSETS_DIR = files("fastapi_offline") / "static"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def install_offline_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add ``docs_url``, its OAuth2 redirect page, ``redoc_url`` and the static assets to ``app``.

    ``app`` must be created with ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages off)."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    @app.get(docs_url, include_in_schema=False)
    @classed(RouteClass.OPEN)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None,
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters)

    if oauth2_redirect_url:
        @app.get(oauth2_redirect_url, include_in_schema=False)
        @classed(RouteClass.OPEN)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    @classed(RouteClass.OPEN)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False)
