"""The machine a benchmark ran on, recorded in its JSON: the one helper every benchmark under bench/ uses.

``describe()`` returns the ``"machine"`` object of a benchmark's last-line JSON::

    {"cpu_model": "AMD EPYC", "cpu_flags": ["avx", "avx2", "fma", ...], "cpus": 2, "arch": "x86_64",
     "torch": "2.13.0+cpu", "python": "3.11.2", "date": "2026-12-08", "command": "python bench/x.py --quick",
     "load_average_1min": 0.4}

``cpu_flags`` keeps the vector and matrix extensions that decide the kernels' speed (avx*, amx*, fma,
sse4*); ``date`` is the UTC date of the run; ``command`` the benchmark's own command line, relative to
the repository root; ``load_average_1min`` the load when the record is taken (call it at the end of a
run: the load it ran under).
"""

import datetime
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FLAG_PREFIXES = ("avx", "amx", "fma", "sse4")


def cpu(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """(CPU model name, sorted vector-extension flags) from ``/proc/cpuinfo`` text (read when not given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), []
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = sorted(f for f in value.split() if f.startswith(FLAG_PREFIXES))
    return model, flags


def command_line(argv: list[str] | None = None) -> str:
    """``python <script relative to the repository> <args>`` of this process."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0]).resolve()
        if script.is_relative_to(REPO_ROOT):
            argv[0] = str(script.relative_to(REPO_ROOT))
    return " ".join(["python", *argv])


def describe() -> dict:
    """The ``"machine"`` record of a benchmark's JSON (see the module docstring)."""
    model, flags = cpu()
    try:
        torch_version = version("torch")     # without importing it (soak.py does not)
    except PackageNotFoundError:
        torch_version = None
    return {"cpu_model": model, "cpu_flags": flags, "cpus": os.cpu_count(), "arch": platform.machine(),
            "torch": torch_version, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
            "command": command_line(), "load_average_1min": round(os.getloadavg()[0], 2)}
