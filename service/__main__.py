"""``afrnn-serve`` / ``python -m service``: serve the checkpoints of a model dir with uvicorn.

With no arguments it serves the shipped checkpoints (``checkpoints/``) on http://127.0.0.1:8000.
Every flag overrides its ``AFRNN_*`` environment variable (see ``service.config.Settings``)::

    afrnn-serve                                         # shipped checkpoints, 127.0.0.1:8000
    afrnn-serve --host 0.0.0.0 --port 8080 --model-dir /models --health-port 8081
    AFRNN_API_KEY=secret AFRNN_LOG_FORMAT=text afrnn-serve --device cpu --max-batch-size 32

The API key is read from ``AFRNN_API_KEY`` only (a flag would show it in the process list).
OpenAPI docs: http://HOST:PORT/docs. Stop with SIGTERM or Ctrl-C: in-flight requests finish, the
queues drain, the log ends with "shutdown complete", and a SIGTERM-ed process exits 0.
"""

import argparse
import sys
from types import UnionType
from typing import Literal, Union, get_args, get_origin

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.connections import Server, install_overload_response, protocol_class, with_header_timeout
from service.log_format import configure_logging


def _shown(field: str, value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if field.endswith("_bytes") and isinstance(value, int) and value % 2**20 == 0:
        return f"{value // 2**20} MiB"
    return f"{value:g}" if isinstance(value, float) else str(value)


# Read from AFRNN_API_KEY only: a flag would show the key in the process list.
ENVIRONMENT_ONLY = {"api_key"}

# uvicorn's own defaults for an idle keep-alive connection, and a cap on open connections + in-flight
# requests beyond which it answers the service's JSON 503 (service.connections); the work requests
# themselves are capped by max_inflight_requests.
KEEP_ALIVE_TIMEOUT_S = 5
CONNECTION_LIMIT = 1024


def _flag_type(annotation) -> tuple[type, tuple | None]:
    """(argparse type, choices) of a Settings field: ``X | None`` is X, a Literal gives its values."""
    if get_origin(annotation) in (Union, UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return str, get_args(annotation)
    return annotation, None


def build_parser() -> argparse.ArgumentParser:
    """One flag per ``Settings`` field (``--max-batch-size`` for ``max_batch_size``), whose help is the
    field's description and default, so that neither is restated here."""
    parser = argparse.ArgumentParser(prog="afrnn-serve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Defaults come from AFRNN_* environment variables, then from "
                                            "service/config.py.")
    for name, field in Settings.model_fields.items():
        if name in ENVIRONMENT_ONLY:
            continue
        flag = "--" + name.replace("_", "-")
        default = f"default {_shown(name, field.default)}"
        help = f"{field.description} ({default})" if field.description else default
        kind, choices = _flag_type(field.annotation)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            parser.add_argument(flag, type=kind, choices=choices, default=None, help=help)
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
    app = create_app(settings)

    def start_draining() -> None:      # at SIGTERM, before in-flight requests finish: readiness turns 503
        app.state.draining = True

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        log_level=settings.log_level, timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        http=with_header_timeout(protocol_class(), settings.header_timeout_s),
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S, limit_concurrency=CONNECTION_LIMIT)
    # SIGTERM: readiness turns 503 at once, in-flight requests drain, then exit 0 (service.connections)
    Server(config, on_exit=start_draining).run()


if __name__ == "__main__":
    main()
