"""Service settings: one typed ``Settings`` read from ``AFRNN_*`` environment variables (or a ``.env``
file), overridden by command-line flags (see ``service.__main__``).

Every field has a documented default, so ``afrnn-serve`` with no arguments and no environment serves
the shipped checkpoints on http://127.0.0.1:8000.

Batching knobs, in the LitServe / Triton sense:

* ``max_batch_size`` — most rows (images, initial states) one forward pass may stack. 32, half the
  clients of a loaded benchmark, keeps two batches in flight: one in the forward pass while the event
  loop answers the other's requests and decodes the next ones. With 64, under 64 clients the batches
  grew to 46–56 rows and the model waited for the event loop between them (docs/performance.md,
  session 11);
* ``max_queue_delay_ms`` — how long the batcher may hold a non-full batch open for more requests.
  0 (the default) forms each batch from whatever is queued when the model becomes free: no latency
  is added to a lone request, and under load requests that arrive during a forward pass form the
  next batch;
* ``max_queue_length`` — requests waiting per model beyond which new ones get 503 + Retry-After.

Admission and connection limits (see ``service.admission``, ``service.middleware``,
``service.connections`` and docs/reliability.md):

* ``max_inflight_requests`` — work requests (inference, stability) admitted at once; beyond it a request
  gets 503 + Retry-After before its body is read;
* ``heavy_max_concurrency`` / ``heavy_max_queue_length`` — the lane for physics references, stability
  reports and PNG figures: jobs running at once, jobs waiting;
* ``header_timeout_s`` / ``body_timeout_s`` — a client must send its request headers, then its whole
  body, within these (else 408 and the connection is closed); ``keep_alive_timeout_s`` closes idle
  connections; ``limit_concurrency`` caps connections + in-flight requests (uvicorn answers 503 beyond);
* ``readiness_policy`` — ``all``: ``/health/ready`` is 200 only when every model found in the model dir
  is loaded; ``any``: when loading has finished and at least one is. Zero models is never ready.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repo's shipped checkpoints, resolved relative to the package so that it does not depend on cwd.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


class Settings(BaseSettings):
    """Configuration of one service process; environment variables are ``AFRNN_<FIELD>``."""

    # A .env file in the working directory is read too (variables in the environment win).
    model_config = SettingsConfigDict(env_prefix="AFRNN_", env_file=".env", extra="ignore",
                                      protected_namespaces=())

    # -- where and what to serve ------------------------------------------------------------------
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="directory of <name>.json manifests + <name>.pt")
    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 in a container)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    health_port: int | None = Field(
        None, ge=1, le=65535, description="a second port whose own thread answers /health/live and "
                                          "/health/ready, so that probes never wait behind the event "
                                          "loop (service.health_port); off when unset")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' takes CUDA when torch sees a GPU, else the CPU")
    strict: bool = Field(False, description="any model that fails to load (or an empty model dir) "
                                            "is fatal at start instead of being served as unavailable")

    # -- dynamic batching -------------------------------------------------------------------------
    max_batch_size: int = Field(32, ge=1, le=4096, description="rows stacked in one forward pass")
    max_queue_delay_ms: float = Field(0.0, ge=0.0, description="hold a non-full batch open this long")
    max_queue_length: int = Field(256, ge=1, description="queued requests per model before 503")
    request_timeout_s: float = Field(30.0, gt=0.0, description="queue wait + inference, else 504")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger request bodies get 413")

    # -- request limits ---------------------------------------------------------------------------
    classify_max_batch: int = Field(64, ge=1, description="images per /classify request")
    pendulum_max_batch: int = Field(256, ge=1, description="initial states per /pendulum/predict request")
    pendulum_max_steps: int = Field(
        290, ge=1, description="longest rollout (steps beyond a model's trained horizon are flagged as "
                               "extrapolated)")
    pendulum_reference_max_batch: int = Field(
        16, ge=1, description="initial states per request with include_reference (each one is an "
                              "adaptive high-order ODE solve on the CPU)")
    stability_cache_size: int = Field(32, ge=0, description="default-input reports kept per process")

    # -- streams (/models/{name}/stream, see docs/streaming.md) -----------------------------------
    stream_max_open: int = Field(1024, ge=1, description="open streams per model; more get 503 / close 1013")
    stream_idle_timeout_s: float = Field(60.0, gt=0.0, description="a stream without a chunk this long "
                                                                   "is closed")
    stream_max_chunk_steps: int = Field(1024, ge=1, description="time steps per chunk (a stream's length "
                                                               "is the model's trained sequence length)")
    stream_max_batch: int | None = Field(None, ge=1, description="streams advanced in one batched step "
                                                                 "(default: all that have a chunk ready)")

    # -- admission and connections (docs/reliability.md) ------------------------------------------
    max_inflight_requests: int = Field(
        64, ge=1, description="work requests (inference, stability) admitted at once; more get 503 + "
                              "Retry-After before their body is read")
    heavy_max_concurrency: int = Field(
        1, ge=1, description="heavy jobs (physics references, stability reports, PNG figures) run at once")
    heavy_max_queue_length: int = Field(16, ge=0, description="heavy jobs waiting before 503")
    header_timeout_s: float = Field(10.0, gt=0.0, description="request headers must arrive within this "
                                                              "(else 408 and close)")
    body_timeout_s: float = Field(30.0, gt=0.0, description="the whole request body must arrive within "
                                                            "this after the headers (else 408 and close)")
    keep_alive_timeout_s: float = Field(5.0, gt=0.0, description="idle keep-alive connections are closed "
                                                                 "after this")
    limit_concurrency: int = Field(1024, ge=1, description="open connections + in-flight requests beyond "
                                                           "which uvicorn answers 503")
    readiness_policy: Literal["all", "any"] = Field(
        "all", description="'all': ready when every model in the model dir is loaded; 'any': when loading "
                           "has finished and at least one is. Zero models is never ready")

    # -- runtime ----------------------------------------------------------------------------------
    torch_threads: int = Field(1, ge=1, description="intra-op threads; 1 is fastest for the small "
                                                   "GEMMs of batch-1 recurrences on 2 cores")
    model_worker: Literal["thread", "process"] = Field(
        "thread", description="where a classifier's forward passes run: a thread of the service process, "
                              "or a child process per model (service.model_process)")
    http_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn", description="the HTTP server: uvicorn (Python protocol, uvloop), or granian (HTTP in "
                               "Rust threads off the GIL: cheaper refusals under bursts; "
                               "service.granian_server says how each connection setting maps)")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="uvicorn's event loop; 'auto' takes uvloop when it is installed")
    http_parser: Literal["auto", "h11", "httptools"] = Field(
        "auto", description="uvicorn's HTTP parser; 'auto' takes httptools when it is installed")
    malloc_mmap_threshold_bytes: int = Field(
        0, ge=0, le=32 * 2**20,
        description="glibc: allocations of at least this many bytes are mapped and returned to the OS when "
                    "freed (pins glibc's dynamic threshold: a lower, flatter resident set for some "
                    "throughput, docs/reliability.md; service.memory); 0: glibc's dynamic default")
    malloc_arena_max: int = Field(
        2, ge=0, le=1024,
        description="glibc: at most this many heap arenas shared by all threads (MALLOC_ARENA_MAX): the "
                    "resident set falls back after a burst instead of keeping a heap per thread that "
                    "allocated (docs/reliability.md; service.memory); 0: glibc's default of 8 per core")
    memory_trim_idle_s: float = Field(
        1.0, ge=0.0, description="glibc: after this long without a work request, return the C heap's free "
                                 "pages to the OS (malloc_trim), so the resident set falls back after a "
                                 "burst (service.memory.IdleTrim; the service process only, not a "
                                 "model_worker='process' child); 0: never")
    gil_switch_interval_ms: float = Field(
        5.0, gt=0, le=100, description="sys.setswitchinterval: how long a thread may hold the GIL while "
                                       "another waits for it (Python's default: 5 ms)")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="least severe log record written")
    log_format: Literal["json", "text"] = Field("json", description="'json' = one JSON object per line")
    api_key: SecretStr | None = Field(None, description="when set, every inference and model route "
                                                        "needs the header X-API-Key")

    @field_validator("log_level", "log_format", "device", "readiness_policy", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_key", "health_port", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return None if value in ("", None) else value

    @model_validator(mode="after")
    def _delay_below_timeout(self) -> "Settings":
        if self.max_queue_delay_ms / 1000.0 >= self.request_timeout_s:
            raise ValueError(f"max_queue_delay_ms ({self.max_queue_delay_ms} ms) must be shorter than "
                             f"request_timeout_s ({self.request_timeout_s} s)")
        return self

    @model_validator(mode="after")
    def _health_port_is_its_own(self) -> "Settings":
        if self.health_port is not None and self.health_port == self.port:
            raise ValueError(f"health_port must differ from port (both {self.port})")
        return self

    @property
    def max_queue_delay_s(self) -> float:
        return self.max_queue_delay_ms / 1000.0
