"""Reliability (issue 14): the bugs found by attacking a running instance, honest readiness, admission
of heavy work with deadlines, cheap rejection before the body is read, and connection hygiene.

Every test runs against a real ``python -m service`` process (``conftest.ServiceProcess``)."""

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from service.matplotlib_env import ensure_matplotlib_config_dir, seed_font_cache

MNIST_ZERO = {"model": "mnist", "pixels": [0] * 784, "scale": 255}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- §5 bugs, on the shared service ----------------------------------------------------------------
@pytest.mark.parametrize("body, loc", [
    ({"model": "mnist", "pixels": "data:image/png;base64"}, ["body", "pixels"]),
    ({"model": "mnist", "images": [[0] * 784, "data:nothing-here"], "scale": 255}, ["body", "images", 1]),
])
def test_a_data_url_without_a_comma_is_422_naming_the_field(client, body, loc):
    r = client.post("/classify", json=body)
    assert r.status_code == 422, r.text
    (issue,) = r.json()["detail"]
    assert issue["loc"] == loc and "comma" in issue["msg"]


def test_a_stability_sample_data_url_without_a_comma_is_422(client):
    r = client.post("/models/mnist/stability", json={"pixels": "data:image/png;base64"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "pixels"]


@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_head_on_the_health_routes_is_200_without_a_body(service, path):
    r = httpx.head(service.url + path)
    assert r.status_code == 200 and r.content == b""
    assert httpx.get(service.url + path).status_code == 200


def test_an_undecodable_png_names_no_python_object(client):
    garbage = base64.b64encode(PNG_MAGIC + b"\x00" * 64).decode()
    r = client.post("/classify", json={"model": "mnist", "pixels": garbage})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "could not be decoded" in msg
    assert "0x" not in msg and "<" not in msg and "object" not in msg, msg


def test_no_server_path_in_readiness_or_503_bodies(service, client, model_dir):
    ready = httpx.get(service.url + "/health/ready")
    assert str(model_dir) not in ready.text and "/tmp" not in ready.text, ready.text
    assert "corrupt.pt" in ready.json()["models"]["corrupt"]            # the file name, not the path
    r = client.post("/classify", json={**MNIST_ZERO, "model": "corrupt"})
    assert r.status_code == 503 and "SHA-256" in r.json()["detail"]
    assert str(model_dir) not in r.text and "/tmp" not in r.text, r.text


def test_a_100_kb_url_is_not_echoed_back(service):
    name = "x" * 100_000                               # httpx refuses such a URL: a raw request
    answer = _raw(service, f"GET /models/{name} HTTP/1.1\r\nhost: x\r\nx-api-key: test-key\r\n"
                           f"connection: close\r\n\r\n".encode())
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
    assert len(answer) < 2_000, len(answer)


def test_a_huge_pixel_is_reported_as_sent_not_as_inf(client):
    pixels = [0] * 784
    pixels[5] = 1e308
    r = client.post("/classify", json={"model": "mnist", "pixels": pixels, "scale": 255})
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "1e+308" in msg and "inf" not in msg and "index 5" in msg, msg


def test_matplotlib_config_dir_falls_back_to_a_writable_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")                       # a dir below a file cannot be created, even by root
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker / "config"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)         # re-read TMPDIR
    chosen = ensure_matplotlib_config_dir()
    assert chosen == str(tmp_path / "tmp" / "afrnn-matplotlib")
    assert os.environ["MPLCONFIGDIR"] == chosen


# matplotlib logs this (INFO) each time it scans the fonts because its config dir has no cache
_REBUILT = "generated new fontManager"
_IMPORT_FONTS = ("import logging; logging.basicConfig(level=logging.INFO); "
                 "import matplotlib.font_manager")


def _import_fonts(config_dir) -> str:
    env = {**os.environ, "MPLCONFIGDIR": str(config_dir)}
    done = subprocess.run([sys.executable, "-c", _IMPORT_FONTS], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout + done.stderr


def test_a_seeded_font_cache_spares_matplotlib_its_font_scan(tmp_path):
    """The image's case: the cache is built once into a read-only seed; a fresh config dir (an empty
    /tmp) gets a copy at start-up, and matplotlib then imports without scanning the fonts."""
    seed, fresh, unseeded = tmp_path / "seed", tmp_path / "fresh", tmp_path / "unseeded"
    for d in (seed, fresh, unseeded):
        d.mkdir()
    assert _REBUILT in _import_fonts(seed)                 # builds the seed, as the Dockerfile does
    (cache,) = [p.name for p in seed.iterdir() if p.name.startswith("fontlist-v")]
    assert seed_font_cache(fresh, seed) == [cache]
    assert (fresh / cache).read_bytes() == (seed / cache).read_bytes()
    assert [p.name for p in fresh.iterdir()] == [cache]    # no temporary file left behind
    assert _REBUILT not in _import_fonts(fresh)
    assert _REBUILT in _import_fonts(unseeded)             # the control: without the seed it scans


def test_seeding_keeps_an_existing_cache_and_survives_a_missing_seed(tmp_path, monkeypatch):
    seed, config = tmp_path / "seed", tmp_path / "config"
    seed.mkdir()
    config.mkdir()
    (seed / "fontlist-v390.json").write_text('{"seed": true}')
    (seed / "unrelated.json").write_text("{}")
    (config / "fontlist-v390.json").write_text('{"own": true}')
    assert seed_font_cache(config, seed) == []
    assert (config / "fontlist-v390.json").read_text() == '{"own": true}'
    assert not (config / "unrelated.json").exists()
    assert seed_font_cache(config, tmp_path / "no-such-seed") == []
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "chosen"))
    assert ensure_matplotlib_config_dir(seed) == str(tmp_path / "chosen")
    assert (tmp_path / "chosen" / "fontlist-v390.json").read_text() == '{"seed": true}'


def test_stability_png_works_when_home_is_not_writable(tmp_path, export_model, start_service, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    models = tmp_path / "models"
    models.mkdir()
    export_model(models, "mnist")
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", str(blocker / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker / "config"))
    proc = start_service(models)
    r = httpx.get(proc.url + "/models/mnist/stability.png", params={"sections": "spectrum"}, timeout=120)
    assert r.status_code == 200 and r.content.startswith(PNG_MAGIC), r.text[:500]
    assert "afrnn-matplotlib" in proc.log()


def test_sigterm_on_an_idle_service_exits_0(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist")
    proc = start_service(tmp_path)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(60) == 0, proc.log()
    assert "shutdown complete" in proc.log()


# -- honest readiness ------------------------------------------------------------------------------
def _wait_settled(proc, timeout_s: float = 120.0) -> httpx.Response:
    """/health/ready once no model is loading any more (200 or a final 503)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, proc.log()
        try:
            r = httpx.get(proc.url + "/health/ready", timeout=5)
            if "loading" not in r.json()["models"].values():
                return r
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(proc.log())


def test_a_missing_model_dir_is_never_ready(tmp_path, start_service):
    proc = start_service(tmp_path / "does-not-exist", wait=False)
    r = _wait_settled(proc)
    assert r.status_code == 503 and r.json()["models"] == {}
    assert "no models" in r.json()["reason"] and str(tmp_path) not in r.text
    assert httpx.get(proc.url + "/health/live").status_code == 200


@pytest.mark.parametrize("policy, expected", [("all", 503), ("any", 200)])
def test_readiness_policy_with_one_of_two_models_loaded(tmp_path, export_model, start_service, policy,
                                                        expected):
    export_model(tmp_path, "mnist")
    export_model(tmp_path, "cifar10")
    pt = tmp_path / "cifar10.pt"
    pt.write_bytes(pt.read_bytes() + b"\0")
    proc = start_service(tmp_path, "--readiness-policy", policy, wait=False)
    r = _wait_settled(proc)
    assert r.status_code == expected, r.text
    body = r.json()
    assert body["models"]["mnist"] == "ready" and "SHA-256" in body["models"]["cifar10"]
    if expected == 503:
        assert "1 of 2 models ready" in body["reason"] and "cifar10" in body["reason"]
        assert str(tmp_path) not in r.text
    assert httpx.post(proc.url + "/classify", json=MNIST_ZERO, timeout=30).status_code == 200


def test_no_readable_artifact_is_not_ready(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist")
    (tmp_path / "mnist.pt").unlink()
    proc = start_service(tmp_path, "--readiness-policy", "any", wait=False)
    r = _wait_settled(proc)
    assert r.status_code == 503 and "0 of 1 models ready" in r.json()["reason"]
    assert "mnist.pt" in r.json()["models"]["mnist"] and str(tmp_path) not in r.text


# -- connection hygiene ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict_timeouts(tmp_path_factory, export_model, start_service):
    """A service with 1 s header and body timeouts."""
    models = tmp_path_factory.mktemp("hygiene-models")
    export_model(models, "mnist")
    proc = start_service(models, "--header-timeout-s", "1", "--body-timeout-s", "1")
    yield proc
    proc.stop()


def _raw(proc, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes the connection (or ``wait_s`` passes)."""
    with socket.create_connection(("127.0.0.1", proc.port), timeout=wait_s) as s:
        s.sendall(data)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except TimeoutError:
            return received + b"<still open>"
        return received


def test_a_content_length_larger_than_the_body_gets_408_and_close(strict_timeouts):
    body = json.dumps(MNIST_ZERO).encode()
    head = (f"POST /classify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {10 * len(body)}\r\n\r\n").encode()
    answer = _raw(strict_timeouts, head + body)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout_s = 1" in answer and not answer.endswith(b"<still open>")


def test_slow_headers_get_408_and_close(strict_timeouts):
    answer = _raw(strict_timeouts, b"GET /health/ready HTTP/1.1\r\nhost: x\r\n")    # never finished
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"header_timeout_s = 1" in answer and not answer.endswith(b"<still open>")


def test_an_idle_connection_is_closed(strict_timeouts):
    """A connection that never sends a byte is closed without a word after header_timeout_s."""
    started = time.monotonic()
    answer = _raw(strict_timeouts, b"")
    assert answer == b"" and time.monotonic() - started < 4.0


def test_an_idle_kept_alive_connection_is_closed(strict_timeouts):
    """After a response, a connection on which no new request starts is closed (after uvicorn's
    keep-alive timeout, 5 s)."""
    answer = _raw(strict_timeouts, b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n", wait_s=8)
    assert answer.startswith(b"HTTP/1.1 200") and not answer.endswith(b"<still open>"), answer[-100:]


def test_the_connection_cap_answers_503_with_retry_after():
    """Beyond uvicorn's ``limit_concurrency`` (``service.__main__.CONNECTION_LIMIT``, 2 here) a request
    gets the service's JSON 503 with Retry-After (``service.connections.install_overload_response``)."""
    import threading

    import uvicorn

    from service.connections import install_overload_response, protocol_class, with_header_timeout

    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    install_overload_response(retry_after_s=1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, limit_concurrency=2,
                                           http=with_header_timeout(protocol_class(), 10)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "too many open connections" in r.json()["detail"]
        for s in held:
            s.close()
    finally:
        server.should_exit = True
        thread.join(10)


# -- cheap rejection -------------------------------------------------------------------------------
def test_auth_is_checked_before_the_body_is_read(service):
    """A request without the key whose body never comes is refused at once (no body wait)."""
    head = (b"POST /classify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n")
    answer = _raw(service, head, wait_s=3)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_health_live_answers_while_the_body_of_another_request_is_pending(service):
    async def scenario():
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"POST /classify HTTP/1.1\r\nhost: x\r\nx-api-key: test-key\r\n"
                     b"content-type: application/json\r\ncontent-length: 50\r\n\r\n{")
        await writer.drain()
        async with httpx.AsyncClient(base_url=service.url) as ac:
            live = await ac.get("/health/live")
        writer.close()
        return live

    live = asyncio.run(scenario())
    assert live.status_code == 200 and live.json() == {"status": "alive"}
