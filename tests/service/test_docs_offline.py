"""``/docs`` and ``/redoc`` load every asset from the service itself: no CDN, so they render on an
air-gapped host (issue 15)."""

import re

import httpx
import pytest

from service.docs import ASSET_FILES, ASSETS_DIR

# the pages' own references: src=..., href=..., url: '...', spec-url=...
REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


def test_the_pinned_wheel_ships_every_asset():
    for name in ASSET_FILES:
        assert (ASSETS_DIR / name).is_file(), name


@pytest.mark.parametrize(("page", "assets"), [
    ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")),
    ("/redoc", ("redoc.standalone.js", "favicon.png")),
])
def test_docs_page_references_only_assets_served_here(service, page, assets):
    response = httpx.get(service.url + page)
    assert response.status_code == 200
    references = REFERENCE.findall(response.text)
    external = [url for url in references if "//" in url or url.startswith("http")]
    assert references and external == [], f"{page} loads from elsewhere: {external}"
    assert "/openapi.json" in references
    for name in assets:
        (url,) = [u for u in references if u.endswith("/" + name)]
        fetched = httpx.get(service.url + url)
        assert fetched.status_code == 200, url
        # the very bytes the wheel ships
        assert fetched.content == (ASSETS_DIR / name).read_bytes(), url


def test_docs_and_assets_need_no_api_key_and_the_schema_does_not_list_them(service):
    assert httpx.get(service.url + "/docs-assets/swagger-ui.css").status_code == 200
    paths = httpx.get(service.url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]


def test_metrics_label_the_docs_routes_and_the_openapi_document(service, read_metric):
    for path in ("/openapi.json", "/docs-assets/swagger-ui.css", "/docs"):
        assert httpx.get(service.url + path).status_code == 200, path
    metrics = httpx.get(service.url + "/metrics").text
    for route in ("/openapi.json", "/docs-assets/{path}", "/docs"):       # were "unmatched" (issue 31)
        assert read_metric(metrics, "afrnn_http_requests_total",
                           {"route": route, "method": "GET", "status": "200"}) >= 1, route
