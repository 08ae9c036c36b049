"""Service settings: one typed ``Settings`` read from ``AFRNN_*`` environment variables (or a ``.env``
file), overridden by command-line flags (see ``service.__main__``).

Every field has a documented default, so ``afrnn-serve`` with no arguments and no environment serves
the shipped checkpoints on http://127.0.0.1:8000. The fields come in five groups:

* **server**: what to serve, where, on which device, when it is ready, how it logs, the API key;
* **the model repository**: explicit load and unload, its admin key, the trusted signing key;
* **batching** (in the LitServe / Triton sense): ``max_batch_size`` rows per forward pass (32 keeps two
  batches in flight under 64 clients: docs/performance.md); ``max_queue_delay_ms`` caps the
  adaptive batch window (``service.batching``: a batch is held open only for rows that recent traffic
  says are coming and the model's fixed cost says are worth waiting for; 0: never held);
  ``max_queue_length`` requests waiting per model before 503; ``request_timeout_s`` queue wait +
  inference, else 504;
* **limits** (docs/reliability.md): work requests admitted at once (``max_inflight_requests``; more
  get 503 + Retry-After before their body is read), body size, the header and body timeouts, and the
  request sizes of each route;
* **streams** (``/models/{name}/stream``, docs/streaming.md).

What is not a setting: uvicorn's keep-alive timeout (5 s) and connection cap (1024, a JSON 503 beyond:
``service.__main__``), the heavy-job lane (one job at a time, 16 waiting) and the stability-report cache
(32 reports: ``service.app``). Standard environment variables cover the rest: ``OMP_NUM_THREADS``
(torch's intra-op threads; 1 when unset), ``MALLOC_ARENA_MAX`` (glibc's heap arenas; 2 in the image)
and ``CUDA_VISIBLE_DEVICES`` (docs/deployment.md).
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

    # -- server -----------------------------------------------------------------------------------
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="the model repository: <name>/<version>/ folders, "
                                                           "or <name>.json manifests + <name>.pt (version 1)")
    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 in a container)")
    port: int = Field(8000, ge=1, le=65535, description="TCP port")
    health_port: int | None = Field(
        None, ge=1, le=65535, description="a second port whose own thread answers /health/live and "
                                          "/health/ready, so that probes never wait behind the event "
                                          "loop (service.health_port); off when unset")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' takes CUDA when torch sees a GPU, else the CPU")
    readiness_policy: Literal["all", "any"] = Field(
        "all", description="'all': ready when every model in the model dir is loaded; 'any': when loading "
                           "has finished and at least one is. Zero models is never ready")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        "info", description="least severe log record written")
    log_format: Literal["json", "text"] = Field("json", description="'json' = one JSON object per line")
    api_key: SecretStr | None = Field(None, description="when set, every inference and model route "
                                                        "needs the header X-API-Key")

    # -- the model repository (docs/open-inference-protocol.md) ----------------------------------
    model_control: Literal["none", "explicit"] = Field(
        "none", description="'none': the model dir is read at start; 'explicit': also "
                            "POST /v2/repository/index and /v2/repository/models/{name}/load|unload")
    admin_key: SecretStr | None = Field(None, description="X-API-Key value of the repository routes "
                                                          "(/v2/repository/*); required with "
                                                          "model_control 'explicit'")
    trusted_key: Path | None = Field(None, description="PEM public key (or certificate chain): when set, a "
                                                       "model version is served only if its folder's "
                                                       "model.sig verifies against it")

    # -- batching ---------------------------------------------------------------------------------
    max_batch_size: int = Field(32, ge=1, le=4096, description="rows stacked in one forward pass")
    max_queue_delay_ms: float = Field(20.0, ge=0.0, description="the longest a batch is held open for "
                                                               "returning rows (adaptive window; 0: never)")
    max_queue_length: int = Field(256, ge=1, description="queued requests per model before 503")
    request_timeout_s: float = Field(30.0, gt=0.0, description="queue wait + inference, else 504")

    # -- limits (docs/reliability.md) -------------------------------------------------------------
    max_inflight_requests: int = Field(
        64, ge=1, description="work requests (inference, stability) admitted at once; more get 503 + "
                              "Retry-After before their body is read")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    header_timeout_s: float = Field(10.0, gt=0.0, description="request headers must arrive within this "
                                                              "(else 408 and close)")
    body_timeout_s: float = Field(30.0, gt=0.0, description="the whole request body must arrive within "
                                                            "this after the headers (else 408 and close)")
    classify_max_batch: int = Field(64, ge=1, description="images per /classify request")
    pendulum_max_batch: int = Field(256, ge=1, description="initial states per /pendulum/predict request")
    pendulum_max_steps: int = Field(
        290, ge=1, description="longest rollout (steps beyond a model's trained horizon are flagged as "
                               "extrapolated)")
    pendulum_reference_max_batch: int = Field(
        16, ge=1, description="initial states per request with include_reference (each one is an "
                              "adaptive high-order ODE solve on the CPU)")

    # -- streams (/models/{name}/stream, see docs/streaming.md) -----------------------------------
    stream_max_open: int = Field(1024, ge=1, description="open streams per model; more get 503 / close 1013")
    stream_idle_timeout_s: float = Field(60.0, gt=0.0, description="a stream without a chunk this long "
                                                                   "is closed")
    stream_max_chunk_steps: int = Field(1024, ge=1, description="time steps per chunk (a stream's length "
                                                               "is the model's trained sequence length)")
    stream_max_batch: int | None = Field(None, ge=1, description="streams advanced in one batched step "
                                                                 "(default: all that have a chunk ready)")

    @field_validator("log_level", "log_format", "device", "readiness_policy", "model_control", mode="before")
    @classmethod
    def _lower(cls, value):
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_key", "admin_key", "trusted_key", "health_port", mode="before")
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
    def _explicit_control_needs_admin_key(self) -> "Settings":
        if self.model_control == "explicit" and self.admin_key is None:
            raise ValueError("model_control 'explicit' needs admin_key (AFRNN_ADMIN_KEY): the repository "
                             "routes load code into the server and are never open")
        if (self.admin_key is not None and self.api_key is not None
                and self.admin_key.get_secret_value() == self.api_key.get_secret_value()):
            raise ValueError("admin_key must differ from api_key")
        return self

    @model_validator(mode="after")
    def _health_port_is_its_own(self) -> "Settings":
        if self.health_port is not None and self.health_port == self.port:
            raise ValueError(f"health_port must differ from port (both {self.port})")
        return self

    @property
    def max_queue_delay_s(self) -> float:
        return self.max_queue_delay_ms / 1000.0
