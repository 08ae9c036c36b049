"""Health probes and /metrics: open without the API key, ready reports device and models, and the
metrics count the requests actually made."""

import httpx


def test_probes_answer_without_the_api_key(service):
    live = httpx.get(service.url + "/health/live")
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready = httpx.get(service.url + "/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["models"]["mnist"] == "ready"
    assert "SHA-256" in body["models"]["corrupt"]          # unavailable models do not block readiness
    assert body["device"]["device"] == "cpu" and body["device"]["torch_threads"] == 1
    assert body["device"]["torch_version"]


def test_metrics_count_the_requests_made(service, client, read_metric):
    def scrape() -> str:
        r = httpx.get(service.url + "/metrics")                 # open without the key
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        return r.text

    before = scrape()
    for _ in range(3):
        ok = client.post("/classify", json={"model": "mnist", "pixels": [0] * 784, "scale": 255})
        assert ok.status_code == 200
    bad = client.post("/classify", json={"model": "mnist", "pixels": [0] * 3, "scale": 255})
    assert bad.status_code == 422
    assert client.get("/models/nope").status_code == 404
    after = scrape()

    def delta(name, **labels):
        return read_metric(after, name, labels) - read_metric(before, name, labels)

    assert delta("afrnn_http_requests_total", route="/classify", method="POST", status="200") == 3
    assert delta("afrnn_http_requests_total", route="/classify", method="POST", status="422") == 1
    assert delta("afrnn_http_requests_total", route="/models/{name}", method="GET", status="404") == 1
    assert delta("afrnn_http_request_duration_seconds_count", route="/classify", model="mnist",
                 status="200") == 3
    assert delta("afrnn_errors_total", kind="validation") == 1
    assert delta("afrnn_errors_total", kind="not_found") == 1
    assert delta("afrnn_batch_size_count", model="mnist") == 3            # sequential: 3 forward passes
    assert delta("afrnn_queue_wait_seconds_count", model="mnist") == 3
    assert delta("afrnn_inference_seconds_count", model="mnist") == 3
    assert read_metric(after, "afrnn_models_loaded") == 3
    assert read_metric(after, "afrnn_model_ready", {"model": "mnist"}) == 1
    assert read_metric(after, "afrnn_model_ready", {"model": "corrupt"}) == 0
    assert read_metric(after, "afrnn_queue_depth", {"model": "mnist"}) == 0
    assert read_metric(after, "afrnn_inflight_requests") == 0             # every request answered
