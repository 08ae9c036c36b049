"""FastAPI's per-request OpenTelemetry check (``NativeTelemetry.enabled``, called by ``FastAPI.__call__``
for every HTTP request): its cost with FastAPI's defaults and with the service's setting (off).
    python results/bench-s14/telemetry_probe.py"""
import timeit

from fastapi import FastAPI

N = 20000
default = FastAPI()
off = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
for label, app in (("default", default), ("off", off), ("default", default), ("off", off)):
    us = timeit.timeit(app._native_telemetry.enabled, number=N) / N * 1e6
    print(f"{label}: {us:.2f} us per request")
