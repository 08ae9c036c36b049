"""The package arrows of docs/architecture.md, checked in fresh interpreters:
service → model, artifact, physics, afrnn_schemas; training → model, artifact, physics; artifact and
physics import neither side; model imports only afrnn_schemas; afrnn_schemas (pydantic only) imports
none of ours; afrnn_client imports only afrnn_schemas (no torch)."""

import subprocess
import sys

import pytest

LOADED = ("import sys, importlib; importlib.import_module({module!r}); "
          "print(sorted({{m.split('.')[0] for m in sys.modules}}))")


def top_level_packages_loaded_by(module: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", LOADED.format(module=module)], check=True,
                         capture_output=True, text=True).stdout
    return set(eval(out))  # noqa: S307 - our own subprocess's printed list


@pytest.mark.parametrize("module, forbidden", [
    ("service.app", {"training", "bench", "tests"}),
    ("service.__main__", {"training", "bench", "tests"}),
    ("artifact.export", {"training", "service"}),
    ("artifact.specs", {"training", "service"}),
    ("physics.encoding", {"training", "service"}),
    ("physics.pendulum", {"training", "service", "torch"}),
    ("model", {"training", "service", "artifact", "physics", "afrnn_client"}),
    ("training.trainer", {"service", "bench", "tests"}),
    ("afrnn_schemas", {"torch", "numpy", "fastapi", "service", "model", "training", "artifact", "physics",
                       "afrnn_client"}),
    ("afrnn_client", {"torch", "numpy", "fastapi", "service", "model", "training", "bench", "tests"}),
])
def test_imports_point_one_way(module, forbidden):
    loaded = top_level_packages_loaded_by(module)
    assert not (loaded & forbidden), f"importing {module} loads {sorted(loaded & forbidden)}"
