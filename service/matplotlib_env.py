"""matplotlib's working directory for the stability PNGs: writable, and with its font cache ready.

matplotlib needs a writable config/cache dir to import, and it builds a font cache there
(``fontlist-v<version>.json``, a scan of every font file) the first time it finds none: seconds of
CPU on the first ``GET /models/{name}/stability.png``. A container with a read-only root filesystem
has one writable place, usually an empty ``/tmp`` (Kubernetes' ``emptyDir``), so a cache built into
the image's ``/tmp`` is hidden there. The image therefore builds the cache once into a read-only
*seed* (``<sys.prefix>/share/afrnn-serving/matplotlib``), and the service copies it into whichever
directory it picks at start-up, before matplotlib is imported.
"""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FONT_CACHE_SEED = Path(sys.prefix) / "share" / "afrnn-serving" / "matplotlib"


def ensure_matplotlib_config_dir(seed: Path = FONT_CACHE_SEED) -> str | None:
    """A writable directory for matplotlib's config and font cache, exported as ``MPLCONFIGDIR``.

    With a read-only root filesystem neither ``~/.config/matplotlib`` nor, often, the temp dir is
    writable. Candidates, in order: an ``MPLCONFIGDIR`` already set, ``$XDG_CONFIG_HOME``/``~/.config``
    + ``/matplotlib``, ``<tempdir>/afrnn-matplotlib``, ``/dev/shm/afrnn-matplotlib``. The chosen one
    gets the font cache from ``seed`` (``seed_font_cache``). None writable → None (the PNG route then
    answers 503 saying so)."""
    candidates = [os.environ.get("MPLCONFIGDIR")]
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    candidates.append(os.path.join(config_home, "matplotlib"))
    with contextlib.suppress(FileNotFoundError):           # no usable temp dir at all
        candidates.append(os.path.join(tempfile.gettempdir(), "afrnn-matplotlib"))
    candidates.append("/dev/shm/afrnn-matplotlib")
    for candidate in filter(None, candidates):
        try:
            os.makedirs(candidate, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=candidate):
                pass
        except OSError:
            continue
        if os.environ.get("MPLCONFIGDIR") != candidate:
            log.info("matplotlib config dir", extra={"mplconfigdir": candidate})
        os.environ["MPLCONFIGDIR"] = candidate
        seed_font_cache(Path(candidate), seed)
        return candidate
    log.warning("no writable directory for matplotlib: GET /models/{name}/stability.png will answer 503")
    return None


def seed_font_cache(config_dir: Path, seed: Path = FONT_CACHE_SEED) -> list[str]:
    """Copy each ``fontlist-v*.json`` of ``seed`` that ``config_dir`` lacks; return the names copied.

    A cache already there is kept (matplotlib rebuilds one whose version it does not know, so a stale
    copy costs nothing but the rebuild it would have done anyway). Each file is written under a
    temporary name and renamed, so a reader never sees half of it. A missing or unreadable seed
    copies nothing: matplotlib then builds its cache on first use, as without one."""
    try:
        caches = sorted(p for p in seed.iterdir() if p.name.startswith("fontlist-v") and p.suffix == ".json")
    except OSError:
        return []
    copied = []
    for cache in caches:
        target = config_dir / cache.name
        if target.exists():
            continue
        try:
            _copy_atomically(cache, target)
        except OSError as exc:
            log.warning("font cache not seeded", extra={"seed": cache.name, "error": str(exc)})
            continue
        copied.append(cache.name)
    if copied:
        log.info("matplotlib font cache seeded", extra={"files": copied})
    return copied


def _copy_atomically(source: Path, target: Path) -> None:
    """``source`` → ``target`` through a temporary file beside ``target`` and a rename."""
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
