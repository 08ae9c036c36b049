"""The demo page's routes without a browser (these run everywhere): ``GET /`` and its assets need no
API key and load nothing from elsewhere; ``GET /samples/...`` serves the shipped test images exactly
as ``artifact.samples`` stores them, behind the key, and rejects bad paths with a 4xx naming the field.
"""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from artifact.samples import sample_path

NO_KEY = None


class _Assets(HTMLParser):
    """Every src/href of the page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, api_key):
    """The service with an API key and no models (the page and the samples need none; with no model
    it never turns ready, so it is waited for until it is live)."""
    return start_server(tmp_path_factory.mktemp("no-models"), api_key=api_key, probe="/health/live")


def test_page_and_assets_need_no_key_and_stay_on_this_origin(server):
    with server.client(api_key=NO_KEY) as client:
        r = client.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        parser = _Assets()
        parser.feed(r.text)
        local = [u for u in parser.urls if u.startswith("/static/")]
        assert {"/static/page.js", "/static/page.css"} <= set(local)
        # links to the service's own pages (the API docs, in-page anchors) and nothing external
        assert all(u.startswith(("/", "#")) for u in parser.urls), parser.urls
        media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        for url in local:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(media[url[url.rfind("."):]]), url
        script = client.get("/static/page.js").text
        # the only absolute URL in the script is the SVG namespace (a name, never fetched)
        assert set(re.findall(r"https?://[^\s\"'`]+", script)) == {"http://www.w3.org/2000/svg"}
        # the API key stays in memory: the script touches no storage
        assert re.findall(r"localStorage|sessionStorage|document\.cookie|indexedDB", script) == []


@pytest.mark.parametrize("name", ["missing.js", "..%2Fapi%2Froutes%2Fpage.py", ".hidden.js", "page.py",
                                  "sub%2Fpage.js"])
def test_only_the_page_assets_are_served(server, name):
    with server.client(api_key=NO_KEY) as client:
        assert client.get(f"/static/{name}").status_code == 404


def test_samples_need_the_key(server):
    with server.client(api_key=NO_KEY) as client:
        for path in ("/samples/mnist", "/samples/mnist/0"):
            r = client.get(path)
            assert r.status_code == 401, path
            assert "X-API-Key" in r.json()["detail"]


@pytest.mark.parametrize("task, shape, class_names", [
    ("mnist", (28, 28, 1), [str(d) for d in range(10)]),
    ("cifar10", (32, 32, 3), ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                              "ship", "truck"]),
])
def test_samples_are_the_shipped_images(server, task, shape, class_names):
    with np.load(sample_path(task)) as stored:             # the files themselves, read directly
        pixels, labels, indices = stored["pixels"], stored["labels"], stored["indices"]
    with server.client() as client:
        listing = client.get(f"/samples/{task}").json()
        assert (listing["height"], listing["width"], listing["channels"]) == shape
        assert [e["label"] for e in listing["images"]] == labels.tolist()
        assert [e["test_index"] for e in listing["images"]] == indices.tolist()
        assert [e["index"] for e in listing["images"]] == list(range(len(labels)))
        assert [e["class_name"] for e in listing["images"]] == [class_names[y] for y in labels]
        for index in (0, 7, len(labels) - 1):
            image = client.get(f"/samples/{task}/{index}").json()
            assert image["label"] == labels[index] and image["test_index"] == indices[index]
            assert image["class_name"] == class_names[labels[index]]
            assert len(image["pixels"]) == shape[0] * shape[1] * shape[2]
            assert image["pixels"] == pixels[index].reshape(-1).tolist()


@pytest.mark.parametrize("path, loc, rule", [
    ("/samples/mnist/300", ["path", "index"], "index must be < 300"),
    ("/samples/mnist/-1", ["path", "index"], "greater than or equal to 0"),
    ("/samples/mnist/one", ["path", "index"], "valid integer"),
    ("/samples/svhn", ["path", "task"], "'mnist' or 'cifar10'"),
    ("/samples/pendulum/0", ["path", "task"], "'mnist' or 'cifar10'"),
])
def test_bad_sample_paths_are_422_naming_the_field(server, path, loc, rule):
    with np.load(sample_path("mnist")) as stored:
        assert len(stored["labels"]) == 300                 # the rule quoted below
    with server.client() as client:
        r = client.get(path)
    assert r.status_code == 422, r.text
    (issue,) = r.json()["detail"]
    assert issue["loc"] == loc and rule in issue["msg"], issue
