"""Where the data sets and the generated-data cache live.

Data directory, first match wins:

1. an explicit ``--data-dir`` (``data_dir`` argument),
2. the environment variable ``AFRNN_DATA_DIR``,
3. ``../shared/data`` relative to the repository root, when it exists (this workspace's layout).

The cache for generated data (the pendulum trajectories) is ``--cache-dir``, else ``AFRNN_CACHE_DIR``,
else ``~/.cache/afrnn``.
"""

import os
from pathlib import Path

DATA_DIR_ENV = "AFRNN_DATA_DIR"
CACHE_DIR_ENV = "AFRNN_CACHE_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory (see the module docstring); raises FileNotFoundError naming the choices."""
    if data_dir is not None:
        path = Path(data_dir).expanduser()
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV]).expanduser()
    elif WORKSPACE_DATA_DIR.is_dir():
        path = WORKSPACE_DATA_DIR
    else:
        raise FileNotFoundError(
            f"no data directory: pass --data-dir, set {DATA_DIR_ENV}, or provide {WORKSPACE_DATA_DIR} "
            "(it must hold mnist/*-ubyte.gz and cifar10/cifar-10-batches-py/)")
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {path} does not exist")
    return path


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache directory for generated data sets (created if missing)."""
    if cache_dir is not None:
        path = Path(cache_dir).expanduser()
    elif os.environ.get(CACHE_DIR_ENV):
        path = Path(os.environ[CACHE_DIR_ENV]).expanduser()
    else:
        path = Path.home() / ".cache" / "afrnn"
    path.mkdir(parents=True, exist_ok=True)
    return path
