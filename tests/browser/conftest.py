"""Fixtures of the demo-page tests: real uvicorn processes (``python -m service``) and, for the
browser tests, Debian's ``chromium`` driven headless by Playwright.

Playwright is pointed at the system chromium (``/usr/bin/chromium``, or ``$AFRNN_CHROMIUM``) and
never downloads a browser of its own. Where chromium or Playwright is missing the browser tests skip
with the reason; with ``AFRNN_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs chromium with
``.ci/setup-chromium.sh``) they fail instead, so CI cannot pass by skipping them.

Each browser test saves a screenshot under ``artifacts/screenshots/`` (``$AFRNN_SCREENSHOT_DIR``),
kept by CI as an artefact.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CHECKPOINTS = REPO_ROOT / "checkpoints"
API_KEY = "browser-test-key"
REQUIRE_BROWSER = os.environ.get("AFRNN_REQUIRE_BROWSER") == "1"
CHROMIUM = Path(os.environ.get("AFRNN_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT_DIR = Path(os.environ.get("AFRNN_SCREENSHOT_DIR", REPO_ROOT / "artifacts" / "screenshots"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READY_TIMEOUT_S = 300          # four shipped models load and warm up, on a busy 2-core machine
REQUEST_TIMEOUT_S = 300
PAGE_TIMEOUT_S = 180           # the page's steps (a load, a classification) on that busy machine


def cannot_run(reason: str) -> None:
    """Skip with ``reason``, or fail when CI demands the browser tests."""
    if REQUIRE_BROWSER:
        pytest.fail(f"AFRNN_REQUIRE_BROWSER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m service`` on a free loopback port, its log in a file."""

    def __init__(self, model_dir: Path, log_path: Path, api_key: str | None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # A stability report of a 784-step model takes seconds on an idle machine and can pass the
        # default 30 s request timeout on a loaded one; these tests are about the page, not timeouts.
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               "AFRNN_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S)}
        env.pop("AFRNN_API_KEY", None)
        if api_key is not None:
            env["AFRNN_API_KEY"] = api_key
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "--model-dir", str(model_dir), "--port", str(self.port),
             "--log-format", "text"], cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, probe: str = "/health/ready") -> "Server":
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + probe, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"service not ready after {READY_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def client(self, api_key: str | None = API_KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": api_key} if api_key else {},
                            timeout=120)


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    """``start_server(model_dir, api_key=API_KEY, probe="/health/ready")``: a Server that answers 200 on
    ``probe``, stopped at the end of the session."""
    started: list[Server] = []

    def start(model_dir: Path, api_key: str | None = API_KEY, probe: str = "/health/ready") -> Server:
        server = Server(model_dir, tmp_path_factory.mktemp("browser-logs") / "service.log", api_key)
        started.append(server)
        return server.wait_ready(probe)

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The system chromium, and Playwright importable; else skip (or fail under AFRNN_REQUIRE_BROWSER)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        hint = f" (a chromium is on PATH at {found}: set AFRNN_CHROMIUM)" if found else ""
        cannot_run(f"no chromium at {CHROMIUM}{hint}; install it with `bash .ci/setup-chromium.sh` "
                   "(apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        cannot_run("Playwright for Python is not installed (pip install -e '.[dev]' brings it)")
    return CHROMIUM


@pytest.fixture(scope="session")
def shipped_server(chromium_path, start_server) -> Server:
    """The service on the SHIPPED checkpoints, with an API key, so the page classifies for real."""
    for name in ("mnist", "mnist-frnn", "pendulum"):
        if not (SHIPPED_CHECKPOINTS / f"{name}.json").is_file():
            pytest.fail(f"the shipped checkpoint {SHIPPED_CHECKPOINTS / name}.json is missing")
    return start_server(SHIPPED_CHECKPOINTS)


@pytest.fixture(scope="module")
def browser_context(chromium_path, tmp_path_factory):
    """One headless chromium (a fresh user-data dir) per test module. Module scope: Playwright's
    sync API keeps an event loop running in the main thread until it stops, and later tests call
    ``asyncio.run``, which refuses to start inside a running loop."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(chromium_path),
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()
    # Playwright's sync API leaves its loop registered as the thread's running loop after it stops;
    # clear it so that later tests' asyncio.run() works.
    asyncio.events._set_running_loop(None)


def wait_until(page, expression: str, timeout_s: float = PAGE_TIMEOUT_S):
    """Poll ``expression`` (JavaScript) until it is truthy; return its value.

    Not ``page.wait_for_function``: its polling evaluates strings inside the page, which the page's
    Content-Security-Policy (no 'unsafe-eval') rightly forbids; ``page.evaluate`` goes through the
    DevTools protocol instead.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {expression}")
        time.sleep(0.05)


class PageSession:
    """A page of the demo plus everything it requested and every console error it logged."""

    def __init__(self, page, server: Server):
        self.page = page
        self.server = server
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: self.errors.append(str(err)))

    def open(self) -> "PageSession":
        """Load GET /, and give the page the API key when it asks for it."""
        page = self.page
        page.goto(self.server.url + "/")
        wait_until(page, "document.getElementById('key-status').textContent.includes('needs an API key')")
        page.fill("#api-key", API_KEY)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#models-table tbody tr")
        wait_until(page, "document.querySelectorAll('#classify-model option').length > 0")
        return self

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the service itself (blob: URLs are the page's own images)."""
        return [url for url in self.requests
                if not (url.startswith(self.server.url + "/") or url.startswith("blob:"))]

    def screenshot(self, name: str, selector: str | None = None) -> Path:
        """``SCREENSHOT_DIR/<name>.png``: the element ``selector``, else the viewport."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        if selector is None:
            self.page.screenshot(path=str(path))
        else:
            self.page.locator(selector).screenshot(path=str(path))
        return path


@pytest.fixture(scope="session")
def page_session():
    return PageSession


@pytest.fixture(scope="session")
def wait():
    """``wait(page, expression, timeout_s=PAGE_TIMEOUT_S)``: see ``wait_until``."""
    return wait_until


@pytest.fixture
def demo(browser_context, shipped_server):
    """A fresh page of the demo on the shipped-checkpoint service, the key given; closed afterwards."""
    page = browser_context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
    session = PageSession(page, shipped_server)
    try:
        yield session.open()
        # no uncaught exception, no CSP violation; the one expected console error is the 401 that
        # made the page ask for the key
        assert all("status of 401" in e for e in session.errors), session.errors
    finally:
        page.close()
