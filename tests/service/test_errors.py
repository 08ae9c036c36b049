"""Transport-level rejections: 413 (with and without Content-Length), 401, overload 503 + Retry-After,
504, and a 422 naming the field (never a 500) for malformed user input."""

import asyncio

import httpx
import pytest

MNIST_ZERO = {"model": "mnist", "pixels": [0] * 784, "scale": 255}


# -- 413 ------------------------------------------------------------------------------------------
def test_body_over_the_limit_with_content_length_is_413(client):
    body = b'{"model": "mnist", "pixels": [' + b"0, " * 400_000 + b"0], \"scale\": 255}"
    assert len(body) > 1_000_000
    r = client.post("/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "max_body_bytes = 1000000" in r.json()["detail"]
    assert client.post("/classify", json=MNIST_ZERO).status_code == 200      # the service carries on


def test_chunked_body_over_the_limit_is_413(client):
    def chunks():
        yield b'{"model": "mnist", "pixels": ['
        for _ in range(100):
            yield b"0, " * 5_000                                                 # 1.5 MB in all
        yield b"0], \"scale\": 255}"

    r = client.post("/classify", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413
    assert "exceeds max_body_bytes = 1000000" in r.json()["detail"]


def test_chunked_body_under_the_limit_is_served(client):
    def chunks():
        yield b'{"model": "mnist", "scale": 255, "pixels": ['
        yield b"0, " * 783
        yield b"0]}"

    r = client.post("/classify", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text


# -- 401 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("headers, rule", [({}, "missing API key"),
                                           ({"X-API-Key": "wrong"}, "wrong API key")])
def test_inference_and_model_routes_need_the_api_key(service, headers, rule):
    with httpx.Client(base_url=service.url, headers=headers) as anonymous:
        rest = {"theta1": 0, "theta2": 0, "omega1": 0, "omega2": 0}
        for method, path, body in (("POST", "/classify", MNIST_ZERO), ("GET", "/models", None),
                                   ("GET", "/models/mnist", None),
                                   ("POST", "/pendulum/predict", {"initial_state": rest}),
                                   ("POST", "/models/mnist/stability", {})):
            r = anonymous.request(method, path, json=body)
            assert r.status_code == 401, (path, r.text)
            assert rule in r.json()["detail"] and r.headers["www-authenticate"] == "ApiKey"


# -- malformed input: a 422 naming the field, never a 500 ---------------------------------------------
PATHS = ("/classify", "/pendulum/predict", "/models/mnist/stability", "/models/pendulum/stability")
BOOL_PIXELS = b'{"pixels": [' + b"1, " * 783 + b'true], "scale": 255}'
# body → the field the 422 names (loc ["body", field]; "" is the body itself, 0 the JSON decoder's
# position), or 200 where the body is a valid request: one entry for every path, or one per path in
# PATHS order. /classify names `model` first for a pixel body without one (three classifiers are
# served); a stability request for the other model's input names the input field.
MALFORMED = [
    (b"", ""), (b"null", ""), (b"[]", ""), (b'"text"', ""), (b"42", ""), (b"\xff\xfe", 0),
    (b"{}", ("", "", 200, 200)),                          # {} asks for the default-input report
    (b'{"pixels": {"a": 1}, "scale": 255}', "pixels"),
    (b'{"images": "abc", "scale": 255}', "images"),
    (b'{"model": 7}', "model"),
    (b'{"pixels": [[[[[[0]]]]]], "scale": 255}', ("model", "pixels", "pixels", "pixels")),
    (b'{"pixels": [1e400], "scale": 255}', ("model", "pixels", "pixels", "pixels")),
    (b'{"initial_state": {"theta1": 1e400, "theta2": 0, "omega1": 0, "omega2": 0}}', "initial_state"),
    (b'{"initial_state": [1, 2, 3, 4]}', "initial_state"),
    (b'{"steps": "many", "initial_state": null}', "steps"),
    (b'{"sections": "theorem"}', "sections"),
    (b'{"lyapunov_k": -1}', "lyapunov_k"),
    (b'{"lyapunov_k": 100000}', "lyapunov_k"),
    (BOOL_PIXELS, ("model", "pixels", "pixels", "pixels")),
    (b'{"pixels": "' + b"A" * 1000 + b'"}', ("model", "pixels", "pixels", "pixels")),
]

def _malformed_cases():
    for number, (body, expected) in enumerate(MALFORMED):
        per_path = expected if isinstance(expected, tuple) else (expected,) * len(PATHS)
        for path, field in zip(PATHS, per_path, strict=True):
            yield pytest.param(path, body, field, id=f"{path}-{number}")


@pytest.mark.parametrize("path, body, field", list(_malformed_cases()))
def test_malformed_input_is_a_422_naming_the_field(client, path, body, field):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    if field == 200:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 422, (r.status_code, r.text)
    loc = r.json()["detail"][0]["loc"]
    expected = ["body"] if field == "" else ["body", field]
    assert loc[:2] == expected and (field != "" or len(loc) == 1), r.text


# -- 503 overload and 504 timeout, on a deliberately slow service ----------------------------------
def _one_deep_slow_service(tmp_path_factory, export_model, start_service, timeout_s: str):
    """A 2×512 MNIST AFRNN (~0.1 s per forward pass) with a 1-deep queue and batch size 1."""
    model_dir = tmp_path_factory.mktemp("slow-models")
    export_model(model_dir, "mnist", layer_sizes=(512, 512))
    return start_service(model_dir, "--max-batch-size", "1", "--max-queue-length", "1",
                         "--request-timeout-s", timeout_s, "--max-queue-delay-ms", "0", api_key="k")


@pytest.fixture(scope="module")
def slow_service(tmp_path_factory, export_model, start_service):
    """With a 20 ms request timeout: every answer comes too late."""
    proc = _one_deep_slow_service(tmp_path_factory, export_model, start_service, "0.02")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def one_deep_service(tmp_path_factory, export_model, start_service):
    """With a deadline long enough that a request reaches the queue even on a loaded machine (with
    20 ms, a burst on a busy machine can spend its whole deadline before the queue, and answer 504
    without ever filling it): a burst overflows the queue."""
    proc = _one_deep_slow_service(tmp_path_factory, export_model, start_service, "20")
    yield proc
    proc.stop()


def test_a_full_queue_gives_503_with_retry_after(one_deep_service):
    async def burst():
        async with one_deep_service.async_client(api_key="k") as ac:
            return await asyncio.gather(*(ac.post("/classify", json=MNIST_ZERO) for _ in range(16)))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 503}, codes               # one runs, one waits, the others are refused
    overloaded = [r for r in responses if r.status_code == 503]
    assert overloaded, codes
    for r in overloaded:
        assert int(r.headers["retry-after"]) >= 1
        assert "max_queue_length = 1" in r.json()["detail"]


def test_a_request_past_its_timeout_gives_504(slow_service):
    with slow_service.client(api_key="k") as c:
        r = c.post("/classify", json=MNIST_ZERO)
        assert r.status_code == 504
        assert "request_timeout_s = 0.02" in r.json()["detail"]
        metrics = httpx.get(slow_service.url + "/metrics").text
        assert 'afrnn_errors_total{kind="timeout"}' in metrics


# -- one error-category table, one Retry-After policy, one API-key check ---------------------------
def test_a_stream_rule_gets_the_category_of_the_same_http_error():
    from service.api.routes.stream import _http_error
    from service.streaming import StreamRuleError

    for reason in ("unavailable", "shutdown"):           # 503 not ready, as for /classify (was overloaded)
        error = _http_error(StreamRuleError(reason, "x", retry_after_s=2))
        assert (error.status_code, error.category, error.headers) == (503, "not_ready", {"Retry-After": "2"})
    full = _http_error(StreamRuleError("too_many_streams", "x", retry_after_s=3))
    assert (full.status_code, full.category) == (503, "overloaded")
    gone = _http_error(StreamRuleError("idle_timeout", "x"))
    assert (gone.status_code, gone.category, gone.headers) == (410, "not_found", None)


def test_the_websocket_and_http_share_the_api_key_check():
    from pydantic import SecretStr
    from starlette.datastructures import Headers, QueryParams

    from service.api.routes.stream import _check_key
    from service.errors import api_key_error
    from service.streaming import StreamRuleError

    class Socket:
        def __init__(self, key):
            self.headers, self.query_params = Headers({"x-api-key": key} if key else {}), QueryParams("")

    secret = SecretStr("k")
    for key in (None, "wrong"):
        with pytest.raises(StreamRuleError) as ws:
            _check_key(Socket(key), secret)
        assert ws.value.detail == api_key_error(key, "k").detail
    _check_key(Socket("k"), secret)
    assert api_key_error(b"k", "k") is None and api_key_error(None, None) is None
