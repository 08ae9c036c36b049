"""The peer server for ``bench/peer_compare.py``: the same MNIST checkpoint served by LitServe.

LitServe (``pip install -e '.[bench]'``) is a FastAPI-based serving framework with dynamic batching
and the inference loop in a separate worker process. This app does the same work per request as our
``POST /classify`` for one image, with the same code where the work is not the server's own:

* decode: ``ClassifierAPI.decode_image`` (flat pixel list, ``scale``, the manifest's normalisation);
* batch → predict: the requests' (T, C) sequences stacked and run through the TorchScript module
  (``load_exported``, SHA-256 checked) under ``torch.inference_mode``, softmax;
* encode: ``ClassifierAPI.encode`` (label, class name, probabilities, top-k).

    python bench/litserve_app.py --port 8100 --model-dir checkpoints --max-batch-size 64

Request: ``POST /predict`` with ``{"pixels": [...784 values...], "scale": 255}``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import litserve as ls  # noqa: E402

from artifact.export import load_exported  # noqa: E402
from service.tasks.classifier import ClassifierAPI  # noqa: E402


class MNISTLitAPI(ls.LitAPI):
    def __init__(self, manifest_path: Path, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.manifest_path = manifest_path
        self.threads = threads

    def setup(self, device):
        torch.set_num_threads(self.threads)
        module, manifest = load_exported(self.manifest_path)
        self.api = ClassifierAPI(manifest, module, torch.device("cpu"))
        with torch.inference_mode():                          # TorchScript's profiling runs
            for batch in (1, 1, 1, self.max_batch_size):
                module(torch.zeros(batch, self.api.steps, self.api.channels))

    def decode_request(self, request):
        return self.api.decode_image(request["pixels"], request.get("scale"), ("pixels",))

    def batch(self, inputs):
        return torch.from_numpy(np.stack(inputs))

    def predict(self, x):
        with torch.inference_mode():
            return torch.softmax(self.api.module(x), dim=-1).numpy()

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        return {"predictions": self.api.encode(output[None], 1, False)}     # top_k 1, as /classify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--batch-timeout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    api = MNISTLitAPI(args.model_dir / "mnist.json", args.threads, max_batch_size=args.max_batch_size,
                      batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30)
    server.run(port=args.port, host="127.0.0.1", log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
