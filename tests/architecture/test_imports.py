"""The package arrows of docs/architecture.md, checked in fresh interpreters:
service → model, artifact, physics; training → model, artifact, physics; artifact and physics import
neither side; model imports none of the other packages."""

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
    ("model", {"training", "service", "artifact", "physics"}),
    ("training.trainer", {"service", "bench", "tests"}),
    ("afrnn_client", {"torch", "training", "model", "bench", "tests"}),
])
def test_imports_point_one_way(module, forbidden):
    loaded = top_level_packages_loaded_by(module)
    assert not (loaded & forbidden), f"importing {module} loads {sorted(loaded & forbidden)}"
