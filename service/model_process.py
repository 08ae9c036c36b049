"""A classifier's forward pass in a process of its own (``--model-worker process``).

By default a model's batches run in a thread of the service process, so the forward pass and the
event loop (HTTP parsing, JSON, decoding and encoding) share one interpreter and its GIL; on a
machine whose cores are also busy with other work, each waits for the other. With
``model_worker = "process"`` the batcher's thread hands each stacked batch to a child process that
holds its own copy of the model, and waits, GIL released, for the answer. This is LitServe's
split, without its polling: the child blocks on its pipe and uses no CPU while idle.

Protocol, over one duplex ``multiprocessing`` pipe, one batch at a time (a model's batcher runs one
batch at a time, so the pipe needs no lock beyond ``_lock``, which guards a restart):

* start: the child loads the artifact (``artifact.export.load_exported``: SHA-256-checked), builds
  the ``ClassifierAPI``, warms it up and sends ``("ready", pid)``, or ``("error", message)``;
* parent → child: ``(x, every_step)``, x a float32 array (N, T, C), already decoded and normalised;
* child → parent: ``("ok", probabilities)`` — (N, classes) or (N, T, classes) — or
  ``("error", message)`` when the forward pass raised (the batcher then retries row by row).

If the child dies (killed, out of memory), the batch in flight fails with ``ModelProcessError`` and
the next batch starts a new child first. The child exits when its pipe closes, so it does not
outlive a service that was killed.
"""

import logging
import multiprocessing
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

START_TIMEOUT_S = 300.0            # load + SHA-256 + warm-up of the largest shipped model, with margin


class ModelProcessError(RuntimeError):
    """The model process failed to start, died, or its forward pass raised."""


def _serve(conn, manifest_path: str, threads: int, max_batch_size: int) -> None:
    """The child: load, warm up, then answer batches until the pipe closes."""
    import torch

    from artifact.export import load_exported
    from service.tasks.classifier import ClassifierAPI

    try:
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        module, manifest = load_exported(Path(manifest_path), map_location="cpu")
        api = ClassifierAPI(manifest, module, torch.device("cpu"))
        api.warmup(max_batch_size)
    except Exception as err:                                       # noqa: BLE001 — reported to the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", multiprocessing.current_process().pid))
    while True:
        try:
            x, every_step = conn.recv()
        except (EOFError, OSError):
            return                                                 # the service has gone
        try:
            with torch.inference_mode():
                probabilities = api.predict(torch.from_numpy(x), every_step).numpy()
            conn.send(("ok", probabilities))
        except Exception as err:                                   # noqa: BLE001 — reported to the parent
            conn.send(("error", f"{type(err).__name__}: {err}"))


class ModelProcess:
    """One classifier served by a child process; ``predict`` blocks until the child answers."""

    def __init__(self, manifest_path: Path, threads: int, max_batch_size: int):
        self.manifest_path = Path(manifest_path)
        self.threads = threads
        self.max_batch_size = max_batch_size
        self._context = multiprocessing.get_context("spawn")     # no forked copy of the server's threads
        self._lock = threading.Lock()
        self._process = None
        self._conn = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> "ModelProcess":
        """Start the child and wait until it has loaded and warmed the model."""
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_serve, args=(child, str(self.manifest_path), self.threads, self.max_batch_size),
            name=f"afrnn-model-{self.manifest_path.stem}", daemon=True)
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            process.kill()
            raise ModelProcessError(f"model process for {self.manifest_path.name} not ready after "
                                    f"{START_TIMEOUT_S:g} s")
        try:
            kind, detail = parent.recv()
        except EOFError:
            process.join(5)
            kind, detail = "error", f"exited with code {process.exitcode}"
        if kind != "ready":
            process.join(5)
            raise ModelProcessError(f"model process for {self.manifest_path.name} failed to start: {detail}")
        self._process, self._conn = process, parent
        log.info("model process ready", extra={"model": self.manifest_path.stem, "pid": detail})
        return self

    def predict(self, x: np.ndarray, every_step: bool) -> np.ndarray:
        """Probabilities for a decoded batch x (N, T, C) float32, computed in the child."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    self.restarts += 1
                    log.error("model process died; restarting it",
                              extra={"model": self.manifest_path.stem, "exitcode": self._process.exitcode})
                self.start()
            try:
                self._conn.send((np.ascontiguousarray(x, dtype=np.float32), bool(every_step)))
                kind, detail = self._conn.recv()
            except (EOFError, OSError) as err:
                self._process.join(1)
                raise ModelProcessError(f"model process for {self.manifest_path.name} died during a batch "
                                        f"(exit code {self._process.exitcode})") from err
        if kind != "ok":
            raise ModelProcessError(f"model process: {detail}")
        return detail

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the pipe (the child then exits) and reap the child."""
        with self._lock:
            if self._process is None:
                return
            self._conn.close()
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = self._conn = None
