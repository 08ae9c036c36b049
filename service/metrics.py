"""Prometheus metrics of one app, on its own ``CollectorRegistry`` (so that several apps in one process,
as in tests, never share or double-register collectors).

=====================================  =========  ======================================================
name                                   type       labels / meaning
=====================================  =========  ======================================================
afrnn_http_requests_total              counter    route, method, status
afrnn_http_request_duration_seconds    histogram  route, model, version, status — wall time of the whole
                                                  request (version: the repository version that served it)
afrnn_inference_seconds                histogram  model — one batched forward pass (worker thread)
afrnn_queue_wait_seconds               histogram  model — enqueue → start of the request's forward
afrnn_batch_size                       histogram  model — rows stacked in one forward pass
afrnn_queue_depth                      gauge      model — requests waiting for the model
afrnn_models_loaded                    gauge      — models loaded and warm
afrnn_model_ready                      gauge      model — 1 when served, 0 while loading or unavailable
afrnn_errors_total                     counter    kind — validation, not_found, body_too_large,
                                                  unauthorized, overloaded, timeout, not_ready, internal,
                                                  slow_client (408), client_disconnected (499: the
                                                  client left before its body was complete), other
afrnn_inference_errors_total           counter    model — forward passes that raised (their callers get 500)
afrnn_inflight_requests                gauge      — work requests admitted and not yet answered
afrnn_work_lane_queue_depth            gauge      — heavy jobs (physics references, stability) waiting
afrnn_work_lane_running                gauge      — heavy jobs running
afrnn_stability_reports_total          counter    model, cache (hit | miss | custom)
afrnn_model_loads_total                counter    model, outcome (loaded | failed | not_found) — one per
                                                  version loaded at start or by the repository API
afrnn_model_unloads_total              counter    model, outcome (unloaded | not_found)
afrnn_model_signature_refusals_total   counter    reason (unsigned | wrong_key | mismatch | flat_layout |
                                                  invalid_signature) — versions refused under a trusted key
=====================================  =========  ======================================================

``route`` is the route's path template (``/models/{name}``; a mounted directory ``/docs-assets/{path}``),
never the raw path, so label cardinality stays bounded; requests that match no route are labelled
``unmatched``.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

ERROR_KINDS = ("validation", "not_found", "body_too_large", "unauthorized", "overloaded", "timeout",
               "not_ready", "internal", "slow_client", "client_disconnected", "forbidden")


class ServiceMetrics:
    """The collectors of one app; ``render()`` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("afrnn_http_requests", "HTTP requests handled",
                                ["route", "method", "status"], registry=r)
        self.request_seconds = Histogram("afrnn_http_request_duration_seconds",
                                         "Wall time of a request, from first byte to response",
                                         ["route", "model", "version", "status"], buckets=LATENCY_BUCKETS,
                                         registry=r)
        self.inference_seconds = Histogram("afrnn_inference_seconds", "Time of one batched forward pass",
                                           ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("afrnn_queue_wait_seconds",
                                            "Time a request waited before its forward pass started",
                                            ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("afrnn_batch_size", "Rows stacked in one forward pass", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("afrnn_queue_depth", "Requests waiting for the model", ["model"],
                                 registry=r)
        self.models_loaded = Gauge("afrnn_models_loaded", "Models loaded and warm", registry=r)
        self.model_ready = Gauge("afrnn_model_ready", "1 when the model is served", ["model"], registry=r)
        self.errors = Counter("afrnn_errors", "Rejected or failed requests by kind", ["kind"], registry=r)
        for kind in ERROR_KINDS:
            self.errors.labels(kind=kind)       # export every kind at 0 from the start
        self.inference_errors = Counter("afrnn_inference_errors", "Forward passes that raised", ["model"],
                                        registry=r)
        self.inflight_requests = Gauge("afrnn_inflight_requests",
                                       "Work requests admitted and not yet answered", registry=r)
        self.work_lane_queue_depth = Gauge("afrnn_work_lane_queue_depth",
                                           "Heavy jobs (physics references, stability) waiting", registry=r)
        self.work_lane_running = Gauge("afrnn_work_lane_running", "Heavy jobs running", registry=r)
        self._batch_children: dict[str, tuple] = {}        # model → its batch histograms' children
        # Extra observers of every batch (rows, inference_s), e.g. the Retry-After estimate.
        self.batch_observers: list = []
        self.stability_reports = Counter("afrnn_stability_reports", "Stability reports served",
                                         ["model", "cache"], registry=r)
        self.model_loads = Counter("afrnn_model_loads", "Model versions loaded, by outcome",
                                   ["model", "outcome"], registry=r)
        self.model_unloads = Counter("afrnn_model_unloads", "Models unloaded, by outcome",
                                     ["model", "outcome"], registry=r)
        self.signature_refusals = Counter("afrnn_model_signature_refusals",
                                          "Model versions refused by the signature check, by reason",
                                          ["reason"], registry=r)

    def observe_batch(self, model: str, rows: int, inference_s: float, queue_waits_s: list[float]) -> None:
        children = self._batch_children.get(model)
        if children is None:        # ``labels()`` validates and locks on every call: once per model
            children = self._batch_children[model] = (
                self.batch_size.labels(model=model), self.inference_seconds.labels(model=model),
                self.queue_wait_seconds.labels(model=model))
        sizes, seconds, waits = children
        sizes.observe(rows)
        seconds.observe(inference_s)
        for wait in queue_waits_s:
            waits.observe(wait)
        for observe in self.batch_observers:
            observe(rows, inference_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
