"""``afrnn-serve`` / ``python -m service``: serve the checkpoints of a model dir with uvicorn.

With no arguments it serves the shipped checkpoints (``checkpoints/``) on http://127.0.0.1:8000.
Every flag overrides its ``AFRNN_*`` environment variable (see ``service.config.Settings``)::

    afrnn-serve                                         # shipped checkpoints, 127.0.0.1:8000
    afrnn-serve --host 0.0.0.0 --port 8080 --model-dir /models --strict
    AFRNN_API_KEY=secret AFRNN_LOG_FORMAT=text afrnn-serve --device cpu --max-batch-size 32

The API key is read from ``AFRNN_API_KEY`` only (a flag would show it in the process list).
OpenAPI docs: http://HOST:PORT/docs. Stop with SIGTERM or Ctrl-C: in-flight requests finish, the
queues drain, the log ends with "shutdown complete", and a SIGTERM-ed process exits 0.
"""

import argparse
import sys
from pathlib import Path
from typing import Literal, get_args, get_origin

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.connections import Server, install_overload_response, protocol_class, with_header_timeout
from service.logging import configure_logging


def _shown(field: str, value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if field.endswith("_bytes") and isinstance(value, int) and value % 2**20 == 0:
        return f"{value // 2**20} MiB"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _adder(parser: argparse.ArgumentParser):
    """``add(flag, help=..., **kwargs)``: the help ends with the default of the flag's
    ``Settings`` field (its description when no help is given), and a Literal field's values are the
    choices, so neither is restated here."""
    def add(flag: str, help: str | None = None, **kwargs):
        name = flag.lstrip("-").replace("-", "_")
        field = Settings.model_fields.get(name)
        if field is not None:
            help = help or field.description
            default = f"default {_shown(name, field.default)}"
            help = f"{help} ({default})" if help else default
            if get_origin(field.annotation) is Literal and "choices" not in kwargs:
                kwargs["choices"] = get_args(field.annotation)
        return parser.add_argument(flag, help=help, **kwargs)
    return add


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afrnn-serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Defaults come from AFRNN_* environment variables, then from "
                                            "service/config.py.")
    add = _adder(parser)
    add("--host")
    add("--port", type=int, help="TCP port")
    add("--model-dir", type=Path, help="directory of <name>.json manifests and <name>.pt artifacts")
    add("--device", help="'auto' takes CUDA when available")
    add("--strict", action="store_true", default=None,
        help="any model that fails to load, or an empty model dir, aborts the start")
    add("--max-batch-size", type=int, help="rows per forward pass")
    add("--max-queue-delay-ms", type=float, help="hold a non-full batch open this long")
    add("--max-queue-length", type=int, help="queued requests per model before 503")
    add("--request-timeout-s", type=float, help="queue wait + inference limit before 504")
    add("--max-body-bytes", type=int, help="larger request bodies get 413")
    add("--classify-max-batch", type=int, help="images per /classify request")
    add("--pendulum-max-batch", type=int, help="initial states per /pendulum/predict request")
    add("--pendulum-max-steps", type=int, help="longest pendulum rollout")
    add("--pendulum-reference-max-batch", type=int,
        help="initial states per request with include_reference")
    add("--max-inflight-requests", type=int,
        help="work requests admitted at once before 503, checked before the body is read")
    add("--heavy-max-concurrency", type=int,
        help="physics references, stability reports and PNGs running at once")
    add("--heavy-max-queue-length", type=int, help="heavy jobs waiting before 503")
    add("--header-timeout-s", type=float, help="request headers must arrive within this")
    add("--body-timeout-s", type=float, help="the request body must arrive within this")
    add("--keep-alive-timeout-s", type=float, help="idle keep-alive connections close after this")
    add("--limit-concurrency", type=int,
        help="connections + in-flight requests before uvicorn answers 503")
    add("--readiness-policy", help="ready when all or any of the model dir's models are loaded")
    add("--torch-threads", type=int, help="intra-op threads")
    add("--model-worker", help="thread: forward passes in the service process; process: a child "
                               "process per classifier")
    add("--event-loop")
    add("--http-parser")
    add("--gil-switch-interval-ms", type=float)
    add("--log-level")
    add("--log-format")
    return parser


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Flags given on the command line, over ``AFRNN_*`` environment variables, over the defaults."""
    args = build_parser().parse_args(argv)
    return Settings(**{key: value for key, value in vars(args).items() if value is not None})


def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_from_args(argv)
    except ValidationError as err:
        sys.exit(f"afrnn-serve: invalid settings:\n{err}")
    configure_logging(settings.log_level, settings.log_format)
    install_overload_response(retry_after_s=1)
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
        log_level=settings.log_level, timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        loop=settings.event_loop,
        http=with_header_timeout(protocol_class(settings.http_parser), settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_timeout_s, limit_concurrency=settings.limit_concurrency)
    Server(config).run()             # SIGTERM: drain, then exit 0 (service.connections.Server)


if __name__ == "__main__":
    main()
