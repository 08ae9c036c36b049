"""Microseconds per ``ClassifierAPI.decode`` of one 784-value pixel list (ints 0-255 with scale 255,
and floats 0-1 with scale 1), in this process, for the checkout given (default: this one).

    python results/bench-s13/decode_probe.py [REPO_ROOT]      # e.g. a worktree of an older commit
"""

import json
import sys
import timeit
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]).resolve()
sys.path.insert(0, str(root))

import numpy as np  # noqa: E402
import pydantic_core  # noqa: E402
import torch  # noqa: E402

from artifact.export import load_exported  # noqa: E402
from service.tasks.classifier import ClassifierAPI  # noqa: E402

torch.set_num_threads(1)
module, manifest = load_exported(Path(__file__).resolve().parents[2] / "checkpoints" / "mnist.json")
api = ClassifierAPI(manifest, module, torch.device("cpu"))
body = json.dumps({"pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
ints = pydantic_core.from_json(body)["pixels"]
floats = [p / 255 for p in ints]
n = 5000
result = {"root": str(root),
          "int_list_us": min(timeit.repeat(lambda: api.decode([ints], 255, [("pixels",)]), number=n, repeat=3)) / n * 1e6,
          "float_list_us": min(timeit.repeat(lambda: api.decode([floats], 1, [("pixels",)]), number=n, repeat=3)) / n * 1e6}
print(json.dumps(result))
